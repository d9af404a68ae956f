//! Local evaluation: flags evaluated in-process from the environment document, kept current by the
//! real-time stream. Needs a server-side key (`bullet-train admin keys create ...`):
//!
//! ```text
//! BULLET_TRAIN_SERVER_KEY=ser.... cargo run -p bullet-train --example local_evaluation -- --watch
//! ```
//!
//! With `--watch` it prints the header flag again after every change made on the server.

use std::time::Duration;

use bullet_train::{BulletTrain, Trait};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let api =
        std::env::var("BULLET_TRAIN_API").unwrap_or_else(|_| "http://127.0.0.1:8000/api/".into());
    let key = std::env::var("BULLET_TRAIN_SERVER_KEY")
        .map_err(|_| "set BULLET_TRAIN_SERVER_KEY to a server-side key (ser.…)")?;
    let watch = std::env::args().any(|a| a == "--watch");

    let bt = BulletTrain::builder(key)
        .api(api)
        .local_evaluation(true)
        .analytics(true)
        .build()?;
    bt.wait_until_ready(Duration::from_secs(10)).await?;
    println!(
        "environment loaded (updated at {:?})",
        bt.environment_updated_at()
    );

    // No request per call from here on.
    for user in ["ben@bullet-train.io", "ada@example.com"] {
        let enabled = bt.feature_enabled_for("dark_mode", user).await?;
        let value = bt.get_value_for("dark_mode", user).await?;
        println!("dark_mode for {user}: enabled={enabled:?} value={value:?}");
    }
    let flags = bt
        .get_identity_flags(
            "ada@example.com",
            &[Trait::new("plan", "pro"), Trait::new("logins", 120)],
        )
        .await?;
    for flag in &flags.flags {
        println!(
            "{} for ada (plan=pro): enabled={} value={} reason={}",
            flag.feature.name,
            flag.enabled,
            flag.feature_state_value,
            flag.reason
                .as_ref()
                .map_or_else(String::new, ToString::to_string)
        );
    }

    if watch {
        let mut updates = bt.updates();
        println!("watching for changes (ctrl-c to stop)");
        loop {
            tokio::select! {
                changed = updates.changed() => changed?,
                _ = tokio::signal::ctrl_c() => break,
            }
            println!(
                "environment changed: header = {:?}",
                bt.get_value("header").await?
            );
        }
    }
    // Send the evaluation counts before leaving.
    bt.close().await?;
    Ok(())
}
