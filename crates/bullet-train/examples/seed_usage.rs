//! The Bullet Train SDK's usage section, in Rust: run it against a server holding the sample
//! environment (README quick start), for example
//!
//! ```text
//! cargo run -p bullet-train --example seed_usage
//! BULLET_TRAIN_API=http://127.0.0.1:8000/api/ BULLET_TRAIN_ENVIRONMENT_KEY=QuickStartEnvironment1 \
//!     cargo run -p bullet-train --example seed_usage
//! ```

use bullet_train::BulletTrain;

#[tokio::main]
async fn main() -> Result<(), bullet_train::Error> {
    let api =
        std::env::var("BULLET_TRAIN_API").unwrap_or_else(|_| "http://127.0.0.1:8000/api/".into());
    let key = std::env::var("BULLET_TRAIN_ENVIRONMENT_KEY")
        .unwrap_or_else(|_| "QuickStartEnvironment1".into());

    // bt = BulletTrain(environment_id="<YOUR_ENVIRONMENT_KEY>", api=...)
    let bt = BulletTrain::builder(key).api(api).build()?;

    // Nested as in the seed.
    #[allow(clippy::collapsible_if)]
    if bt.has_feature("header").await? {
        if bt.feature_enabled("header").await? == Some(true) {
            // Show my awesome cool new feature to the world
            println!("header is enabled");
        }
    }

    let value = bt.get_value_for("header", "<My User Id>").await?;
    println!("header for <My User Id>: {}", show(value));

    let value = bt.get_value("header").await?;
    println!("header: {}", show(value));

    bt.set_trait("accept-cookies", "true", "ben@bullet-train.io")
        .await?;
    let accepted = bt
        .get_trait("accept-cookies", "ben@bullet-train.io")
        .await?;
    println!("accept-cookies of ben@bullet-train.io: {}", show(accepted));

    // The trait puts ben in a segment that overrides the header.
    let value = bt.get_value_for("header", "ben@bullet-train.io").await?;
    println!("header for ben@bullet-train.io: {}", show(value));

    for flag in bt.get_flags().await? {
        println!(
            "flag {}: enabled={} value={}",
            flag.feature.name, flag.enabled, flag.feature_state_value
        );
    }
    for flag in bt.get_flags_for_user("ben@bullet-train.io").await? {
        println!(
            "flag of ben@bullet-train.io {}: enabled={} value={}",
            flag.feature.name, flag.enabled, flag.feature_state_value
        );
    }
    Ok(())
}

fn show(value: Option<bullet_train::Value>) -> String {
    value.map_or_else(
        || "(no such feature or trait)".to_owned(),
        |v| v.to_string(),
    )
}
