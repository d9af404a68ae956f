//! Our environment documents read by `flagsmith-flag-engine`, the engine inside Flagsmith's Rust SDK,
//! whose model is the strictest of the SDKs' parsers: both the document SDKs fetch and the admin
//! export parse, and its evaluation of them agrees with what our server answers remotely.

use std::collections::BTreeMap;

use flagsmith_flag_engine::engine::get_evaluation_result;
use flagsmith_flag_engine::engine_eval::mappers::{
    add_identity_to_context, environment_to_context,
};
use flagsmith_flag_engine::environments::Environment;
use flagsmith_flag_engine::identities::Trait;
use flagsmith_flag_engine::types::FlagsmithValue;
use serde_json::{Value, json};

use crate::compat::{RICH_KEY, rich_app};
use crate::helpers::flag_map;

#[tokio::test]
async fn the_rust_sdk_engine_reads_our_documents_and_agrees_with_the_server() {
    let (app, server_key) = rich_app().await;
    let (status, fetched) = app
        .get_json("/api/v1/environment-document/", &server_key)
        .await;
    assert_eq!(status, 200);
    let exported = app.export(RICH_KEY).await;
    for (name, document) in [("fetched", &fetched), ("exported", &exported)] {
        let environment: Environment = serde_json::from_value(document.clone())
            .unwrap_or_else(|e| panic!("the {name} document does not parse: {e}"));
        assert_eq!(environment.api_key, RICH_KEY);
        assert_eq!(environment.feature_states.len(), 6, "{name}");
    }
    let environment: Environment = serde_json::from_value(fetched).unwrap();
    let context = environment_to_context(environment);
    let plans = ["free", "pro", "team", "enterprise"];
    let countries = ["GB", "FR", "DE"];
    let versions = ["1.9.0", "2.0.0", "2.1.3"];
    for i in 0..120u32 {
        let identifier = format!("user-{i}");
        let traits = json!({
            "plan": plans[i as usize % plans.len()],
            "age": 15 + (i * 7) % 50,
            "country": countries[i as usize % countries.len()],
            "email": if i % 5 == 0 { format!("u{i}@example.com") } else { format!("u{i}@mail.test") },
            "version": versions[i as usize % versions.len()],
            "beta": i % 4 == 0,
            "score": f64::from(i % 10) / 10.0,
            "logins": i % 9,
        });
        let engine_traits: Vec<Trait> = traits
            .as_object()
            .unwrap()
            .iter()
            .map(|(key, value)| Trait {
                trait_key: key.clone(),
                trait_value: serde_json::from_value::<FlagsmithValue>(value.clone()).unwrap(),
            })
            .collect();
        let result = get_evaluation_result(&add_identity_to_context(
            &context,
            &identifier,
            &engine_traits,
        ));
        let theirs: BTreeMap<String, (bool, Value)> = result
            .flags
            .into_values()
            .map(|f| (f.name, (f.enabled, serde_json::to_value(&f.value).unwrap())))
            .collect();
        let body = json!({"identifier": identifier, "transient": true, "traits": traits
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| json!({"trait_key": k, "trait_value": v}))
            .collect::<Vec<_>>()});
        let (status, answer) = app.post_json("/api/v1/identities/", RICH_KEY, &body).await;
        assert_eq!(status, 200);
        assert_eq!(
            flag_map(&answer["flags"]),
            theirs,
            "{identifier} with {traits}"
        );
    }
}
