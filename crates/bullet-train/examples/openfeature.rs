//! Bullet Train behind the OpenFeature API (`--features openfeature`):
//!
//! ```text
//! cargo run -p bullet-train --features openfeature --example openfeature
//! ```
//!
//! With a server-side key in `BULLET_TRAIN_SERVER_KEY` flags are evaluated locally; otherwise the
//! client key in `BULLET_TRAIN_ENVIRONMENT_KEY` (default: the quick start's) is used remotely.

use bullet_train::BulletTrain;
use bullet_train::openfeature::BulletTrainProvider;
use open_feature::{EvaluationContext, OpenFeature};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let api =
        std::env::var("BULLET_TRAIN_API").unwrap_or_else(|_| "http://127.0.0.1:8000/api/".into());
    let client = match std::env::var("BULLET_TRAIN_SERVER_KEY") {
        Ok(key) => BulletTrain::builder(key)
            .api(api)
            .local_evaluation(true)
            .build()?,
        Err(_) => {
            let key = std::env::var("BULLET_TRAIN_ENVIRONMENT_KEY")
                .unwrap_or_else(|_| "QuickStartEnvironment1".into());
            BulletTrain::builder(key).api(api).build()?
        }
    };

    let mut api = OpenFeature::singleton_mut().await;
    api.set_provider(BulletTrainProvider::new(client)).await;
    let flags = api.create_client();
    drop(api);

    // The targeting key is the identity, other fields are its traits.
    let context = EvaluationContext::default()
        .with_targeting_key("ada@example.com")
        .with_custom_field("plan", "pro");

    // Resolution errors carry a code; the usual pattern is to fall back to a default.
    match flags
        .get_string_details("header", Some(&context), None)
        .await
    {
        Ok(header) => println!("header: {:?} (reason {:?})", header.value, header.reason),
        Err(error) => println!("header: {:?}", error.code),
    }
    let font_size = flags
        .get_int_value("font_size", Some(&context), None)
        .await
        .unwrap_or(10);
    println!("font_size: {font_size}");
    let dark_mode = flags
        .get_bool_value("dark_mode", Some(&context), None)
        .await
        .unwrap_or(false);
    println!("dark_mode enabled: {dark_mode}");
    if let Ok(checkout) = flags
        .get_string_details("checkout", Some(&context), None)
        .await
    {
        println!(
            "checkout: {:?} (variant {:?})",
            checkout.value, checkout.variant
        );
    }
    match flags
        .get_bool_value("no_such_flag", Some(&context), None)
        .await
    {
        Ok(value) => println!("no_such_flag: {value}"),
        Err(error) => println!("no_such_flag: {:?}", error.code),
    }
    Ok(())
}
