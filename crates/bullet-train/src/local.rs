//! Local evaluation: the environment document compiled into an engine snapshot, and the background
//! refresher that keeps it current (polling with `If-Modified-Since`, and the real-time SSE stream
//! that triggers a fetch as soon as the server says the environment changed). A failed refresh keeps
//! the last good document.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bullet_train_engine::{Identity, Snapshot};
use bullet_train_protocol::{EnvironmentDocument, Value};
use futures_util::StreamExt;
use reqwest::Url;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until, timeout};

use crate::analytics::Analytics;
use crate::client::Shared;
use crate::types::{Feature, Flag, Reason};

/// First retry delay after a failed fetch or a dropped stream; doubles up to the refresh interval
/// (fetches) or [`MAX_RECONNECT`] (stream).
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// Longest wait before reconnecting the stream.
const MAX_RECONNECT: Duration = Duration::from_secs(10);
/// A stream that sends nothing (not even a keep-alive) for this long is reconnected.
const STREAM_IDLE: Duration = Duration::from_secs(60);
/// Longest event accepted from the stream.
const MAX_EVENT: usize = 64 * 1024;

/// What the SDK knows of a feature beyond what the engine needs.
#[derive(Debug)]
struct FeatureInfo {
    id: u64,
    feature_type: String,
    state_id: Option<i64>,
}

/// One loaded environment document, compiled.
#[derive(Debug)]
pub(crate) struct LocalState {
    pub(crate) snapshot: Snapshot,
    /// The client key (the document's `api_key`), which names the real-time stream.
    pub(crate) client_key: String,
    /// The document's `updated_at` in Unix seconds.
    pub(crate) updated_at: Option<f64>,
    environment_id: i64,
    project_id: u64,
    /// By snapshot feature position.
    features: Vec<FeatureInfo>,
    /// Evaluations since the last analytics flush, by snapshot feature position.
    counters: Box<[AtomicU64]>,
}

impl LocalState {
    pub(crate) fn new(document: &EnvironmentDocument) -> LocalState {
        let snapshot = Snapshot::from_document(document);
        let mut features: Vec<FeatureInfo> = (0..snapshot.feature_count())
            .map(|_| FeatureInfo {
                id: 0,
                feature_type: String::new(),
                state_id: None,
            })
            .collect();
        for state in &document.feature_states {
            if let Some(position) = snapshot.feature_position(&state.feature.name) {
                features[position] = FeatureInfo {
                    id: state.feature.id,
                    feature_type: state.feature.feature_type.clone(),
                    state_id: state.django_id.and_then(|id| i64::try_from(id).ok()),
                };
            }
        }
        for warning in snapshot.warnings() {
            tracing::warn!(segment = %warning.segment, message = %warning.message, "segment rule never matches");
        }
        let counters = (0..snapshot.feature_count())
            .map(|_| AtomicU64::new(0))
            .collect();
        LocalState {
            client_key: document.api_key.clone(),
            updated_at: document.updated_at.as_deref().and_then(parse_updated_at),
            environment_id: i64::try_from(document.id).unwrap_or_default(),
            project_id: document.project.id,
            snapshot,
            features,
            counters,
        }
    }

    /// Counts one evaluation of the feature at `position` (allocation-free, lock-free).
    pub(crate) fn count(&self, position: usize) {
        if let Some(counter) = self.counters.get(position) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Moves the counts into `analytics`.
    pub(crate) fn drain_counts(&self, analytics: &Analytics) {
        for (position, counter) in self.counters.iter().enumerate() {
            let n = counter.swap(0, Ordering::Relaxed);
            if n > 0
                && let Some(name) = self.snapshot.feature_name(position)
            {
                analytics.add(name, n);
            }
        }
    }

    /// The SDK flag of an engine flag.
    pub(crate) fn flag(&self, flag: &bullet_train_engine::Flag<'_>) -> Flag {
        let info = &self.features[flag.feature_position];
        Flag {
            id: info.state_id,
            enabled: flag.enabled,
            environment: Some(self.environment_id),
            feature_state_value: flag.value.clone(),
            feature: Feature {
                id: flag.feature_id.unwrap_or(info.id),
                name: flag.name.to_owned(),
                description: None,
                feature_type: Some(info.feature_type.clone()).filter(|t| !t.is_empty()),
                created_date: None,
                initial_value: None,
                project: Some(self.project_id),
            },
            variant: flag.variant.map(str::to_owned),
            reason: Some(match flag.reason {
                bullet_train_engine::Reason::Default => Reason::Default,
                bullet_train_engine::Reason::TargetingMatch { segment } => Reason::TargetingMatch {
                    segment: segment.to_owned(),
                },
                bullet_train_engine::Reason::Split { .. } => Reason::Split,
            }),
            is_default: false,
        }
    }

    /// Every flag of the environment (no identity).
    pub(crate) fn environment_flags(&self) -> Vec<Flag> {
        let evaluation = self.snapshot.environment_flags();
        evaluation.flags().iter().map(|f| self.flag(f)).collect()
    }

    /// Every flag of an identity with the given traits.
    pub(crate) fn identity_flags(&self, identifier: &str, traits: &[(&str, &Value)]) -> Vec<Flag> {
        let identity = Identity::new(identifier).with_traits(traits);
        let evaluation = self.snapshot.evaluate(Some(&identity));
        evaluation.flags().iter().map(|f| self.flag(f)).collect()
    }
}

/// `updated_at` (ISO 8601, with or without offset) in Unix seconds.
pub(crate) fn parse_updated_at(text: &str) -> Option<f64> {
    use time::format_description::well_known::Rfc3339;
    let parsed = time::OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| time::OffsetDateTime::parse(&format!("{text}Z"), &Rfc3339))
        .ok()?;
    Some(parsed.unix_timestamp_nanos() as f64 / 1e9)
}

/// Keeps the environment current until shutdown: fetches now (retrying with backoff until it
/// works), then every `refresh_interval`, and whenever the stream reports a newer `updated_at`.
pub(crate) async fn refresher(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let (events, mut updates) = mpsc::channel::<f64>(16);
    let mut stream_started = false;
    let mut failures: u32 = 0;
    let mut next = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = sleep_until(next) => {}
            Some(updated_at) = updates.recv() => {
                let current = shared.local.load().as_ref().and_then(|s| s.updated_at);
                if current.is_some_and(|current| updated_at <= current) {
                    continue;
                }
                tracing::debug!(updated_at, "environment changed on the server");
            }
        }
        match shared.refresh().await {
            Ok(_) => {
                failures = 0;
                next = Instant::now() + shared.refresh_interval;
            }
            Err(error) => {
                failures += 1;
                let delay = FIRST_RETRY
                    .saturating_mul(1 << failures.min(16))
                    .min(shared.refresh_interval);
                tracing::warn!(%error, retry_in = ?delay, "environment refresh failed; serving the last document");
                next = Instant::now() + delay;
            }
        }
        shared.first_attempt_done();
        if !stream_started
            && let Some(realtime) = &shared.realtime_url
            && let Some(state) = shared.local.load_full()
        {
            stream_started = true;
            let url = stream_url(realtime, &state.client_key);
            tokio::spawn(stream(url, events.clone(), shutdown.clone()));
        }
    }
}

fn stream_url(realtime: &Url, client_key: &str) -> Url {
    let mut url = realtime.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments
            .pop_if_empty()
            .extend(["sse", "environments", client_key, "stream"]);
    }
    url
}

/// Listens to the real-time stream, sending each event's `updated_at` to the refresher, and
/// reconnects with backoff whenever the stream ends or fails.
async fn stream(url: Url, events: mpsc::Sender<f64>, mut shutdown: watch::Receiver<bool>) {
    let client = match reqwest::Client::builder()
        .user_agent(crate::USER_AGENT)
        .connect_timeout(Duration::from_secs(10))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::warn!(%error, "real-time updates unavailable");
            return;
        }
    };
    let mut failures: u32 = 0;
    loop {
        let connected = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            connected = listen(&client, &url, &events) => connected,
        };
        failures = if connected { 0 } else { failures + 1 };
        let delay = FIRST_RETRY
            .saturating_mul(1 << failures.min(16))
            .min(MAX_RECONNECT);
        tracing::debug!(retry_in = ?delay, "real-time stream closed");
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// One connection to the stream; returns whether it was established.
async fn listen(client: &reqwest::Client, url: &Url, events: &mpsc::Sender<f64>) -> bool {
    let response = match client
        .get(url.clone())
        .header("accept", "text/event-stream")
        .send()
        .await
    {
        Ok(response) if response.status().is_success() => response,
        Ok(response) => {
            tracing::debug!(status = %response.status(), "real-time stream refused");
            return false;
        }
        Err(error) => {
            tracing::debug!(%error, "real-time stream unreachable");
            return false;
        }
    };
    let mut body = response.bytes_stream();
    let mut parser = EventParser::default();
    loop {
        let chunk = match timeout(STREAM_IDLE, body.next()).await {
            Ok(Some(Ok(chunk))) => chunk,
            _ => return true,
        };
        for data in parser.feed(&chunk) {
            match updated_at_of(&data) {
                Some(updated_at) => {
                    if events.send(updated_at).await.is_err() {
                        return true;
                    }
                }
                None => tracing::debug!(data, "ignoring a real-time event without updated_at"),
            }
        }
        if parser.overflowed() {
            tracing::warn!("real-time event too long; reconnecting");
            return true;
        }
    }
}

/// `{"updated_at": <seconds>}` of an event's data.
fn updated_at_of(data: &str) -> Option<f64> {
    let value: serde_json::Value = serde_json::from_str(data).ok()?;
    value.get("updated_at")?.as_f64()
}

/// Splits a `text/event-stream` body into the data of its `environment_updated` (or unnamed)
/// events.
#[derive(Debug, Default)]
pub(crate) struct EventParser {
    buffer: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
    overflow: bool,
}

impl EventParser {
    /// Feeds a chunk; returns the data of every event it completed.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Vec<String> {
        self.buffer.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                let event = self.event.take();
                if let Some(data) = self.data.take()
                    && event.as_deref().is_none_or(|e| e == "environment_updated")
                {
                    out.push(data);
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line, ""),
            };
            match field {
                "event" => self.event = Some(value.to_owned()),
                "data" => match &mut self.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => self.data = Some(value.to_owned()),
                },
                _ => {}
            }
        }
        if self.buffer.len() + self.data.as_ref().map_or(0, String::len) > MAX_EVENT {
            self.overflow = true;
            self.buffer.clear();
            self.data = None;
        }
        out
    }

    /// Whether an event exceeded the size limit (the connection should be dropped).
    pub(crate) fn overflowed(&self) -> bool {
        self.overflow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_split_across_chunks() {
        let mut parser = EventParser::default();
        assert!(
            parser
                .feed(b"retry: 15000\nevent: environment_upd")
                .is_empty()
        );
        assert!(
            parser
                .feed(b"ated\r\ndata: {\"updated_at\": 1.5}\r\n")
                .is_empty()
        );
        assert_eq!(
            parser.feed(b"\r\n: keep-alive\n\n"),
            vec![r#"{"updated_at": 1.5}"#]
        );
        assert_eq!(
            parser.feed(b"data: {\"updated_at\":\ndata: 2}\n\nevent: other\ndata: x\n\n"),
            vec!["{\"updated_at\":\n2}"]
        );
        assert_eq!(updated_at_of("{\"updated_at\":\n2}"), Some(2.0));
        assert_eq!(updated_at_of("not json"), None);
    }

    #[test]
    fn drops_oversized_events() {
        let mut parser = EventParser::default();
        parser.feed(b"data: ");
        parser.feed(&vec![b'x'; MAX_EVENT + 1]);
        assert!(parser.overflowed());
    }

    #[test]
    fn reads_updated_at_with_and_without_offset() {
        assert_eq!(
            parse_updated_at("1970-01-01T00:00:01.500000+00:00"),
            Some(1.5)
        );
        assert_eq!(parse_updated_at("1970-01-01T00:00:02.25"), Some(2.25));
        assert_eq!(parse_updated_at("yesterday"), None);
    }

    #[test]
    fn stream_url_appends_to_the_realtime_base() {
        let base = Url::parse("http://127.0.0.1:8000/").unwrap();
        assert_eq!(
            stream_url(&base, "abc").as_str(),
            "http://127.0.0.1:8000/sse/environments/abc/stream"
        );
        let base = Url::parse("https://realtime.example.com/prefix/").unwrap();
        assert_eq!(
            stream_url(&base, "abc").as_str(),
            "https://realtime.example.com/prefix/sse/environments/abc/stream"
        );
    }
}
