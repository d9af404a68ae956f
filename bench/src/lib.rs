//! Parts of the benchmark harness (`bench/run`) that must be programs: `bt-baseline`, a bare axum
//! server answering with precomputed bodies (the hardware baseline every figure is divided by), and
//! `bt-fanout`, which opens many event streams and measures how long a change takes to reach them.

#![forbid(unsafe_code)]
