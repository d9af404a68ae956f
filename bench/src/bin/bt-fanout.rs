//! Real-time fan-out meter: opens `--streams` event streams of an environment on one server, waits
//! until each has received its first event, then changes a flag through the admin API (of the same
//! server, or of another replica) `--rounds` times, and records when each stream sees each change.
//! Prints one JSON object: per round the latency percentiles over all streams, from just before the
//! admin request to the event's arrival.

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

#[derive(Debug, Parser)]
struct Args {
    /// Base URL of the server the streams connect to.
    #[arg(long)]
    stream_url: String,
    /// Base URL of the server the changes are written through (default: the stream server).
    #[arg(long)]
    write_url: Option<String>,
    /// Admin token.
    #[arg(long)]
    token: String,
    /// Client key of the environment.
    #[arg(long)]
    key: String,
    /// Feature whose value each round changes.
    #[arg(long, default_value = "feature_0")]
    feature: String,
    /// Number of streams.
    #[arg(long, default_value_t = 1)]
    streams: usize,
    /// Number of changes.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Streams connecting at the same time.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
}

/// Reads events from one stream, reporting each `environment_updated` arrival.
async fn listen(
    client: reqwest::Client,
    url: String,
    id: usize,
    connecting: std::sync::Arc<Semaphore>,
    ready: mpsc::UnboundedSender<usize>,
    arrivals: mpsc::UnboundedSender<(usize, Instant)>,
) -> anyhow::Result<()> {
    let permit = connecting.acquire_owned().await?;
    let response = client.get(&url).send().await?.error_for_status()?;
    let mut body = response.bytes_stream();
    let mut buffer: Vec<u8> = Vec::new();
    let mut first = true;
    let mut permit = Some(permit);
    while let Some(chunk) = body.next().await {
        buffer.extend_from_slice(&chunk?);
        while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = buffer.drain(..end + 2).collect();
            if !block.windows(17).any(|w| w == b"environment_updat") {
                continue;
            }
            if first {
                first = false;
                drop(permit.take());
                let _ = ready.send(id);
            } else {
                let _ = arrivals.send((id, Instant::now()));
            }
        }
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let write_url = args
        .write_url
        .clone()
        .unwrap_or_else(|| args.stream_url.clone());
    let admin = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let auth = format!("Token {}", args.token);
    let page: Value = admin
        .get(format!(
            "{write_url}/api/v1/environments/{}/featurestates/?feature_name={}",
            args.key, args.feature
        ))
        .header("Authorization", &auth)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let state = page["results"][0]["id"].clone();
    anyhow::ensure!(state.is_number(), "no state for {}: {page}", args.feature);

    let streams = reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(0)
        .build()?;
    let url = format!("{}/sse/environments/{}/stream", args.stream_url, args.key);
    let connecting = std::sync::Arc::new(Semaphore::new(args.connect_concurrency));
    let (ready_tx, mut ready) = mpsc::unbounded_channel();
    let (arrival_tx, mut arrivals) = mpsc::unbounded_channel();
    let started = Instant::now();
    for id in 0..args.streams {
        let task = listen(
            streams.clone(),
            url.clone(),
            id,
            connecting.clone(),
            ready_tx.clone(),
            arrival_tx.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = task.await {
                eprintln!("stream {id}: {e}");
            }
        });
    }
    drop(ready_tx);
    let mut connected = 0;
    while connected < args.streams {
        match tokio::time::timeout(Duration::from_secs(60), ready.recv()).await {
            Ok(Some(_)) => connected += 1,
            _ => break,
        }
    }
    let connect_seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        connected == args.streams,
        "only {connected} of {} streams connected",
        args.streams
    );

    let mut rounds = Vec::new();
    for round in 0..args.rounds {
        let sent = Instant::now();
        admin
            .patch(format!(
                "{write_url}/api/v1/environments/{}/featurestates/{state}/",
                args.key
            ))
            .header("Authorization", &auth)
            .json(&json!({"enabled": true, "feature_state_value": format!("fanout-{round}-{}", sent.elapsed().as_nanos())}))
            .send()
            .await?
            .error_for_status()?;
        let mut latencies = Vec::with_capacity(args.streams);
        let mut seen = vec![false; args.streams];
        while latencies.len() < args.streams {
            match tokio::time::timeout(Duration::from_secs(30), arrivals.recv()).await {
                Ok(Some((id, at))) if !seen[id] => {
                    seen[id] = true;
                    latencies.push(at.duration_since(sent).as_secs_f64() * 1000.0);
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        if latencies.len() < args.streams {
            anyhow::bail!(
                "round {round}: only {} of {} streams received the change within 30 s",
                latencies.len(),
                args.streams
            );
        }
        latencies.sort_by(f64::total_cmp);
        rounds.push(json!({
            "received": latencies.len(),
            "p50_ms": percentile(&latencies, 50.0),
            "p99_ms": percentile(&latencies, 99.0),
            "max_ms": latencies.last().copied().unwrap_or(f64::NAN),
        }));
    }
    println!(
        "{}",
        json!({"streams": args.streams, "connect_seconds": connect_seconds, "rounds": rounds})
    );
    Ok(())
}
