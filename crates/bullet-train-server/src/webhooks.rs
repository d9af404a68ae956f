//! Webhook delivery. Deliveries are queued by the store in the transaction of the change that causes
//! them (so a write never waits for a receiver, and a restart loses none); this worker sends the due
//! ones, signs them (`X-Flagsmith-Signature`: hex HMAC-SHA256 of the body with the webhook's secret),
//! and retries failures with exponential backoff until the attempts run out.

use std::sync::Arc;
use std::time::Duration;

use bullet_train_store::Store;
use bullet_train_store::admin::DeliveryAttempt;
use bullet_train_store::model::{Webhook, WebhookDelivery};
use bullet_train_store::time::now_micros;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::Limits;

/// The handle writers use to wake the worker.
#[derive(Debug, Default)]
pub(crate) struct Webhooks {
    notify: Notify,
}

impl Webhooks {
    /// Tells the worker that deliveries may be due.
    pub(crate) fn wake(&self) {
        self.notify.notify_one();
    }
}

/// Hex HMAC-SHA256 of `body` keyed with `secret`.
pub(crate) fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// How many deliveries are sent at once. Each runs on its own, so a receiver that is slow to
/// answer (up to the delivery timeout) holds one of these and delays no other delivery.
const IN_FLIGHT: usize = 32;

/// Sends due deliveries until shutdown.
pub(crate) async fn run(
    store: Arc<dyn Store>,
    webhooks: Arc<Webhooks>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let http = match reqwest::Client::builder()
        .timeout(limits.webhook_timeout)
        .user_agent(concat!("bullet-train/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "webhook client unavailable; deliveries stay queued");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    // Dropped on shutdown, which stops the sends under way: their claims lapse and another start
    // (or replica) retries them.
    let mut sending = JoinSet::new();
    loop {
        while sending.try_join_next().is_some() {}
        // Claimed for twice the delivery timeout: if this replica dies mid-delivery, another
        // one retries after that.
        let now = now_micros();
        let lease = now + (limits.webhook_timeout * 2).as_micros() as i64;
        let room = slots.available_permits();
        if room > 0 {
            match store.due_deliveries(now, lease, room as i64).await {
                Ok(due) => {
                    for (delivery, webhook) in due {
                        let Ok(slot) = slots.clone().try_acquire_owned() else {
                            break;
                        };
                        let (store, http, webhooks) =
                            (store.clone(), http.clone(), webhooks.clone());
                        sending.spawn(async move {
                            deliver(&store, &http, &limits, delivery, webhook).await;
                            drop(slot);
                            // A retry may now be due earlier than the worker planned to look.
                            webhooks.wake();
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading due webhook deliveries"),
            }
        }
        // With every slot taken, the next finished send wakes the worker.
        let wait = if slots.available_permits() == 0 {
            Duration::from_secs(3600)
        } else {
            match store.next_delivery_at().await {
                Ok(Some(at)) => Duration::from_micros((at - now_micros()).max(0) as u64),
                Ok(None) => Duration::from_secs(3600),
                Err(_) => Duration::from_secs(1),
            }
        };
        tokio::select! {
            _ = webhooks.notify.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn deliver(
    store: &Arc<dyn Store>,
    http: &reqwest::Client,
    limits: &Limits,
    delivery: WebhookDelivery,
    webhook: Webhook,
) {
    let mut request = http
        .post(&webhook.url)
        .header("content-type", "application/json")
        .body(delivery.payload.clone());
    if let Some(secret) = webhook.secret.as_deref().filter(|s| !s.is_empty()) {
        request = request.header(
            "X-Flagsmith-Signature",
            signature(secret, delivery.payload.as_bytes()),
        );
    }
    let (status_code, error) = match request.send().await {
        Ok(response) if response.status().is_success() => {
            (Some(i64::from(response.status().as_u16())), None)
        }
        Ok(response) => (
            Some(i64::from(response.status().as_u16())),
            Some(format!("HTTP {}", response.status())),
        ),
        Err(e) => (None, Some(e.to_string())),
    };
    let delivered = error.is_none();
    let attempt = delivery.attempts + 1;
    let retry_at = (!delivered && attempt < i64::from(limits.webhook_attempts)).then(|| {
        let factor = 1u32 << (attempt - 1).clamp(0, 16) as u32;
        now_micros() + (limits.webhook_backoff * factor).as_micros() as i64
    });
    if !delivered {
        tracing::warn!(webhook = webhook.id, attempt, error = ?error, "webhook delivery failed");
    }
    let outcome = DeliveryAttempt {
        status_code,
        error,
        delivered,
        retry_at,
    };
    if let Err(e) = store.record_attempt(delivery.id, &outcome).await {
        tracing::warn!(error = %e, "recording a webhook delivery attempt");
    }
}
