//! The admin API through HTTP: every resource, bad input, authorisation, audit entries, webhooks
//! (with a real receiver), the OpenAPI document, and the effect of writes on the SDK API.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bullet_train_server::Limits;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;

use crate::helpers::{TestApp, admin_call as call, admin_ok as ok, flag_map, utc_day};

/// An organisation, a project, and two environments.
struct World {
    organisation: i64,
    project: i64,
    prod: Value,
    staging: Value,
}

async fn world(app: &TestApp) -> World {
    let organisation = ok(
        app,
        Method::POST,
        "/api/v1/organisations/",
        Some(json!({"name": "Acme"})),
    )
    .await;
    let organisation = organisation["id"].as_i64().unwrap();
    let project = ok(
        app,
        Method::POST,
        "/api/v1/projects/",
        Some(json!({"name": "Web", "organisation": organisation})),
    )
    .await;
    let project = project["id"].as_i64().unwrap();
    let prod = ok(
        app,
        Method::POST,
        "/api/v1/environments/",
        Some(json!({"name": "Production", "project": project})),
    )
    .await;
    let staging = ok(
        app,
        Method::POST,
        "/api/v1/environments/",
        Some(json!({"name": "Staging", "project": project})),
    )
    .await;
    World {
        organisation,
        project,
        prod,
        staging,
    }
}

fn key(environment: &Value) -> String {
    environment["api_key"].as_str().unwrap().to_owned()
}

/// The environment-default state of a feature, through the admin API.
async fn default_state(app: &TestApp, environment: &Value, feature: &str) -> Value {
    let page = ok(
        app,
        Method::GET,
        &format!(
            "/api/v1/environments/{}/featurestates/?feature_name={feature}",
            key(environment)
        ),
        None,
    )
    .await;
    assert_eq!(page["count"], 1, "{page}");
    page["results"][0].clone()
}

/// PATCHes an environment's feature state through the admin API.
async fn patch_state(app: &TestApp, environment: &Value, state: &Value, body: Value) -> Value {
    let path = format!(
        "/api/v1/environments/{}/featurestates/{}/",
        key(environment),
        state["id"]
    );
    ok(app, Method::PATCH, &path, Some(body)).await
}

#[tokio::test]
async fn from_an_empty_server_to_a_targeted_rollout() {
    let app = TestApp::empty().await;
    let w = world(&app).await;
    assert_eq!(key(&w.prod).len(), 22);
    let (status, error) = call(
        &app,
        Method::POST,
        "/api/v1/environments/",
        Some(json!({"name": "Production", "project": w.project})),
    )
    .await;
    assert_eq!(
        (status, error),
        (
            400,
            json!({"non_field_errors": ["An environment with this name already exists."]})
        )
    );

    // A feature with two options gets a state in every environment.
    let feature = ok(&app, Method::POST, &format!("/api/v1/projects/{}/features/", w.project), Some(json!({
        "name": "checkout", "initial_value": "classic", "default_enabled": true, "description": "Checkout flow",
        "multivariate_options": [
            {"type": "unicode", "string_value": "express", "default_percentage_allocation": 25, "key": "express"},
            {"type": "unicode", "string_value": "one_page", "default_percentage_allocation": 25},
        ]}))).await;
    assert_eq!(feature["type"], "MULTIVARIATE");
    assert_eq!(feature["multivariate_options"].as_array().unwrap().len(), 2);
    let feature_id = feature["id"].as_i64().unwrap();
    for env in [&w.prod, &w.staging] {
        let state = default_state(&app, env, "checkout").await;
        assert_eq!(
            (
                state["enabled"].clone(),
                state["feature_state_value"].clone()
            ),
            (json!(true), json!("classic"))
        );
        assert_eq!(
            state["multivariate_feature_state_values"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let (_, flags) = app.get_json("/api/v1/flags/", &key(env)).await;
        assert_eq!(flag_map(&flags)["checkout"], (true, json!("classic")));
    }
    let (status, error) = call(
        &app,
        Method::POST,
        &format!("/api/v1/projects/{}/features/", w.project),
        Some(json!({"name": "CHECKOUT"})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        error["name"][0],
        "Feature with that name already exists for this project. Note that feature names are case insensitive."
    );

    // Toggling in production changes only production, immediately, and reaches its stream.
    let prod_key = key(&w.prod);
    let mut stream = app
        .request(Method::GET, &format!("/sse/environments/{prod_key}/stream"))
        .send()
        .await
        .unwrap();
    let first = stream.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("environment_updated"));
    let state = default_state(&app, &w.prod, "checkout").await;
    let updated = ok(
        &app,
        Method::PATCH,
        &format!(
            "/api/v1/environments/{prod_key}/featurestates/{}/",
            state["id"]
        ),
        Some(json!({"enabled": false, "feature_state_value": 42})),
    )
    .await;
    assert_eq!(updated["feature_state_value"], 42);
    let (_, flags) = app.get_json("/api/v1/flags/", &prod_key).await;
    assert_eq!(flag_map(&flags)["checkout"], (false, json!(42)));
    let (_, flags) = app.get_json("/api/v1/flags/", &key(&w.staging)).await;
    assert_eq!(flag_map(&flags)["checkout"], (true, json!("classic")));
    let event = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let chunk = stream.chunk().await.unwrap().unwrap();
            let text = String::from_utf8_lossy(&chunk).into_owned();
            if text.contains("environment_updated") {
                return text;
            }
        }
    })
    .await
    .expect("the change reaches the stream");
    assert!(event.contains("updated_at"));
    ok(
        &app,
        Method::PATCH,
        &format!(
            "/api/v1/environments/{prod_key}/featurestates/{}/",
            state["id"]
        ),
        Some(json!({"enabled": true, "feature_state_value": "classic"})),
    )
    .await;

    // A segment for pro users, overriding the feature in production.
    let segment = ok(
        &app,
        Method::POST,
        &format!("/api/v1/projects/{}/segments/", w.project),
        Some(json!({
        "name": "pros", "description": "Paying users",
        "rules": [{"type": "ALL", "rules": [{"type": "ANY", "rules": [], "conditions": [
            {"operator": "EQUAL", "property": "plan", "value": "pro"},
            {"operator": "EQUAL", "property": "plan", "value": "team"}]}], "conditions": []}]})),
    )
    .await;
    let segment_id = segment["id"].as_i64().unwrap();
    assert_eq!(
        segment["rules"][0]["rules"][0]["conditions"][1]["value"],
        "team"
    );
    let link = ok(
        &app,
        Method::POST,
        "/api/v1/features/feature-segments/",
        Some(json!({
        "feature": feature_id, "segment": segment_id, "environment": w.prod["id"]})),
    )
    .await;
    assert_eq!(link["priority"], 0);
    ok(&app, Method::POST, "/api/v1/features/featurestates/", Some(json!({
        "feature": feature_id, "environment": w.prod["id"], "feature_segment": link["id"], "enabled": true,
        "feature_state_value": {"type": "unicode", "string_value": "pro-checkout"}}))).await;
    let body =
        json!({"identifier": "pat", "traits": [{"trait_key": "plan", "trait_value": "team"}]});
    let (_, identity) = app.post_json("/api/v1/identities/", &prod_key, &body).await;
    assert_eq!(
        flag_map(&identity["flags"])["checkout"],
        (true, json!("pro-checkout"))
    );

    // A 10% rollout segment placed first (priority 0) pushes the other override down.
    let rollout = ok(
        &app,
        Method::POST,
        &format!("/api/v1/projects/{}/segments/", w.project),
        Some(json!({
        "name": "ten_percent", "rules": [{"type": "ALL", "conditions": [
            {"operator": "PERCENTAGE_SPLIT", "property": "", "value": "10"}]}]})),
    )
    .await;
    let created = ok(
        &app,
        Method::POST,
        &format!("/api/v1/environments/{prod_key}/features/{feature_id}/create-segment-override/"),
        Some(
            json!({"feature_segment": {"segment": rollout["id"], "priority": 0}, "enabled": true,
            "feature_state_value": {"type": "unicode", "string_value": "beta-checkout"}}),
        ),
    )
    .await;
    assert_eq!(created["feature_segment"]["priority"], 0);
    assert_eq!(
        created["feature_state_value"]["string_value"],
        "beta-checkout"
    );
    let links = ok(
        &app,
        Method::GET,
        &format!(
            "/api/v1/features/feature-segments/?environment={}&feature={feature_id}",
            w.prod["id"]
        ),
        None,
    )
    .await;
    let order: Vec<(String, i64)> = links["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["segment_name"].as_str().unwrap().to_owned(),
                l["priority"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(order, vec![("ten_percent".into(), 0), ("pros".into(), 1)]);
    let mut in_rollout = 0;
    for i in 0..200 {
        let (_, identity) = app
            .get_json(
                &format!("/api/v1/identities/?identifier=u{i}&transient=1"),
                &prod_key,
            )
            .await;
        if flag_map(&identity["flags"])["checkout"].1 == json!("beta-checkout") {
            in_rollout += 1;
        }
    }
    assert!(
        (5..=45).contains(&in_rollout),
        "{in_rollout} of 200 in a 10% rollout"
    );
    // Re-order: pros first again.
    let reordered = ok(
        &app,
        Method::POST,
        "/api/v1/features/feature-segments/update-priorities/",
        Some(json!([{"id": link["id"], "priority": 0}])),
    )
    .await;
    assert_eq!(reordered[0]["priority"], 0);
    let (_, identity) = app.post_json("/api/v1/identities/", &prod_key, &body).await;
    assert_eq!(
        flag_map(&identity["flags"])["checkout"],
        (true, json!("pro-checkout"))
    );

    // The evaluate endpoint explains each flag.
    let evaluation = ok(
        &app,
        Method::POST,
        &format!("/api/v1/environments/{prod_key}/evaluate/"),
        Some(json!({"identifier": "pat"})),
    )
    .await;
    let checkout = evaluation["flags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"] == "checkout")
        .unwrap();
    assert_eq!(checkout["reason"], "TARGETING_MATCH; segment=pros");
    assert!(
        evaluation["segments"]
            .as_array()
            .unwrap()
            .contains(&json!("pros"))
    );

    // Identity overrides beat segments.
    let identities = ok(
        &app,
        Method::GET,
        &format!("/api/v1/environments/{prod_key}/identities/?q=pa"),
        None,
    )
    .await;
    assert_eq!(identities["count"], 1);
    let pat = identities["results"][0]["id"].as_i64().unwrap();
    let identity_override = ok(
        &app,
        Method::POST,
        &format!("/api/v1/environments/{prod_key}/identities/{pat}/featurestates/"),
        Some(json!({"feature": feature_id, "enabled": false, "feature_state_value": "just-pat"})),
    )
    .await;
    let (_, identity) = app.post_json("/api/v1/identities/", &prod_key, &body).await;
    assert_eq!(
        flag_map(&identity["flags"])["checkout"],
        (false, json!("just-pat"))
    );
    let all = ok(
        &app,
        Method::GET,
        &format!("/api/v1/environments/{prod_key}/identities/{pat}/featurestates/all/"),
        None,
    )
    .await;
    assert_eq!(all[0]["overridden_by"], "IDENTITY");
    ok(
        &app,
        Method::DELETE,
        &format!(
            "/api/v1/environments/{prod_key}/identities/{pat}/featurestates/{}/",
            identity_override["id"]
        ),
        None,
    )
    .await;
    let all = ok(
        &app,
        Method::GET,
        &format!("/api/v1/environments/{prod_key}/identities/{pat}/featurestates/all/"),
        None,
    )
    .await;
    assert_eq!(all[0]["overridden_by"], "SEGMENT");
    assert_eq!(all[0]["segment"]["name"], "pros");

    // Deleting the segment removes its overrides everywhere.
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/projects/{}/segments/{segment_id}/", w.project),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (_, identity) = app.post_json("/api/v1/identities/", &prod_key, &body).await;
    assert_ne!(
        flag_map(&identity["flags"])["checkout"].1,
        json!("pro-checkout")
    );
}

#[tokio::test]
async fn features_options_and_states_validate_their_input() {
    let app = TestApp::empty().await;
    let w = world(&app).await;
    let features = format!("/api/v1/projects/{}/features/", w.project);
    let cases = [
        (json!({}), "name"),
        (json!({"name": ""}), "name"),
        (
            json!({"name": "x", "default_enabled": "yes"}),
            "default_enabled",
        ),
        (
            json!({"name": "x", "multivariate_options": [{"type": "int", "integer_value": 1, "default_percentage_allocation": 70},
            {"type": "int", "integer_value": 2, "default_percentage_allocation": 70}]}),
            "multivariate_options",
        ),
        (
            json!({"name": "x", "multivariate_options": [{"key": "control"}]}),
            "multivariate_options",
        ),
        (
            json!({"name": "x", "initial_value": {"a": 1}}),
            "initial_value",
        ),
    ];
    for (body, field) in cases {
        let (status, error) = call(&app, Method::POST, &features, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}");
        assert!(error.get(field).is_some(), "{field}: {error}");
    }
    let listed = ok(&app, Method::GET, &features, None).await;
    assert_eq!(listed["count"], 0, "nothing was created");

    let feature = ok(
        &app,
        Method::POST,
        &features,
        Some(json!({"name": "size", "initial_value": 12})),
    )
    .await;
    assert_eq!(feature["initial_value"], "12");
    let state = default_state(&app, &w.prod, "size").await;
    assert_eq!(
        state["feature_state_value"], 12,
        "an integer initial value gives an integer state"
    );
    let path = format!(
        "/api/v1/environments/{}/featurestates/{}/",
        key(&w.prod),
        state["id"]
    );
    for body in [
        json!({"enabled": "no"}),
        json!({"feature_state_value": [1]}),
        json!({"multivariate_feature_state_values": [{"multivariate_feature_option": 999999, "percentage_allocation": 10}]}),
    ] {
        let (status, _) = call(&app, Method::PATCH, &path, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}");
    }
    assert_eq!(
        default_state(&app, &w.prod, "size").await,
        state,
        "refused updates change nothing"
    );

    // Options: adding one makes the feature multivariate with the option in every environment.
    let options = format!("{features}{}/mv-options/", feature["id"]);
    let option = ok(
        &app,
        Method::POST,
        &options,
        Some(json!({"type": "int", "integer_value": 15,
        "default_percentage_allocation": 40})),
    )
    .await;
    assert_eq!(
        (option["type"].clone(), option["integer_value"].clone()),
        (json!("int"), json!(15))
    );
    let (status, error) = call(
        &app,
        Method::POST,
        &options,
        Some(json!({"type": "int", "integer_value": 20,
        "default_percentage_allocation": 70})),
    )
    .await;
    assert_eq!(
        (status, error["default_percentage_allocation"][0].clone()),
        (400, json!("Invalid percentage allocation"))
    );
    let staging = default_state(&app, &w.staging, "size").await;
    assert_eq!(
        staging["multivariate_feature_state_values"][0]["percentage_allocation"],
        40.0
    );
    let over = json!({"multivariate_feature_state_values": [{"multivariate_feature_option": option["id"], "percentage_allocation": 101}]});
    assert_eq!(call(&app, Method::PATCH, &path, Some(over)).await.0, 400);
    // Errors name each item by position.
    let mixed = json!({"multivariate_feature_state_values": [
        {"multivariate_feature_option": option["id"], "percentage_allocation": 10},
        {"multivariate_feature_option": "x"},
    ]});
    let (status, error) = call(&app, Method::PATCH, &path, Some(mixed)).await;
    assert_eq!(status, 400);
    assert_eq!(
        error["multivariate_feature_state_values"],
        json!([{}, {"multivariate_feature_option": ["Incorrect type. Expected pk value."],
            "percentage_allocation": ["This field is required."]}])
    );
    let retrieved = ok(
        &app,
        Method::GET,
        &format!("{features}{}/", feature["id"]),
        None,
    )
    .await;
    assert_eq!(retrieved["type"], "MULTIVARIATE");
    ok(
        &app,
        Method::DELETE,
        &format!("{options}{}/", option["id"]),
        None,
    )
    .await;
    let retrieved = ok(
        &app,
        Method::GET,
        &format!("{features}{}/", feature["id"]),
        None,
    )
    .await;
    assert_eq!(retrieved["type"], "STANDARD");

    // Listing with an environment adds its state; search and pages.
    for name in ["alpha", "alphabet", "beta"] {
        ok(&app, Method::POST, &features, Some(json!({"name": name}))).await;
    }
    let found = ok(
        &app,
        Method::GET,
        &format!("{features}?search=ALPHA&environment={}", w.prod["id"]),
        None,
    )
    .await;
    assert_eq!(found["count"], 2);
    assert_eq!(
        found["results"][0]["environment_feature_state"]["enabled"],
        false
    );
    let page = ok(
        &app,
        Method::GET,
        &format!("{features}?page_size=2&page=2"),
        None,
    )
    .await;
    assert_eq!(page["count"], 4);
    assert_eq!(page["results"].as_array().unwrap().len(), 2);
    assert!(page["previous"].as_str().unwrap().contains("page_size=2"));
    assert_eq!(page["next"], Value::Null);
    let (status, _) = call(&app, Method::GET, &format!("{features}?page=9"), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn segments_validate_rules_and_operators() {
    let app = TestApp::empty().await;
    let w = world(&app).await;
    let segments = format!("/api/v1/projects/{}/segments/", w.project);
    let cases = [
        json!({"name": "s"}),
        json!({"name": "s", "rules": []}),
        json!({"name": "s", "rules": [{"type": "SOME", "conditions": []}]}),
        json!({"name": "s", "rules": [{"type": "ALL", "conditions": [{"operator": "STARTS_WITH", "property": "a", "value": "b"}]}]}),
        json!({"name": "s", "rules": [{"type": "ALL", "conditions": [{"operator": "EQUAL", "property": "", "value": "b"}]}]}),
        json!({"name": "", "rules": [{"type": "ALL", "conditions": []}]}),
    ];
    for body in cases {
        let (status, error) = call(&app, Method::POST, &segments, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {error}");
    }
    let operators = [
        "EQUAL",
        "NOT_EQUAL",
        "GREATER_THAN",
        "GREATER_THAN_INCLUSIVE",
        "LESS_THAN",
        "LESS_THAN_INCLUSIVE",
        "CONTAINS",
        "NOT_CONTAINS",
        "REGEX",
        "PERCENTAGE_SPLIT",
        "MODULO",
        "IS_SET",
        "IS_NOT_SET",
        "IN",
    ];
    let conditions: Vec<Value> = operators
        .iter()
        .map(|op| json!({"operator": op, "property": "p", "value": "1"}))
        .collect();
    let segment = ok(&app, Method::POST, &segments, Some(json!({"name": "every_operator",
        "rules": [{"type": "ANY", "conditions": conditions, "rules": [{"type": "NONE", "conditions": [
            {"operator": "EQUAL", "property": "q", "value": 5}]}]}]}))).await;
    assert_eq!(
        segment["rules"][0]["conditions"].as_array().unwrap().len(),
        14
    );
    assert_eq!(
        segment["rules"][0]["rules"][0]["conditions"][0]["value"], "5",
        "values are kept as text"
    );
    let renamed = ok(
        &app,
        Method::PATCH,
        &format!("{segments}{}/", segment["id"]),
        Some(json!({"name": "renamed"})),
    )
    .await;
    assert_eq!(renamed["name"], "renamed");
    assert_eq!(
        renamed["rules"], segment["rules"],
        "a partial update keeps the rules"
    );
    // The segment reaches every environment's document.
    let server = app.server_key(&key(&w.staging)).await;
    let (_, document) = app.get_json("/api/v1/environment-document/", &server).await;
    assert_eq!(document["project"]["segments"][0]["name"], "renamed");
    let listed = ok(&app, Method::GET, &format!("{segments}?q=REN"), None).await;
    assert_eq!(listed["count"], 1);
}

#[tokio::test]
async fn identities_and_traits_through_the_admin_api() {
    let app = TestApp::empty().await;
    let w = world(&app).await;
    let base = format!("/api/v1/environments/{}/identities/", key(&w.prod));
    let ann = ok(
        &app,
        Method::POST,
        &base,
        Some(json!({"identifier": "ann"})),
    )
    .await;
    let (status, error) = call(
        &app,
        Method::POST,
        &base,
        Some(json!({"identifier": "ann"})),
    )
    .await;
    assert_eq!(
        (status, error),
        (
            400,
            json!({"identifier": "Identity with identifier 'ann' already exists in this environment"})
        )
    );
    for name in ["annabel", "bob", "ann_2"] {
        ok(&app, Method::POST, &base, Some(json!({"identifier": name}))).await;
    }
    assert_eq!(
        ok(&app, Method::GET, &format!("{base}?q=ANN"), None).await["count"],
        3
    );
    assert_eq!(
        ok(&app, Method::GET, &format!("{base}?q=%22ann%22"), None).await["count"],
        1
    );
    let page = ok(
        &app,
        Method::GET,
        &format!("{base}?page_size=3&page=2"),
        None,
    )
    .await;
    assert_eq!(
        (
            page["count"].clone(),
            page["results"].as_array().unwrap().len()
        ),
        (json!(4), 1)
    );

    let traits = format!("{base}{}/traits/", ann["id"]);
    let age = ok(
        &app,
        Method::POST,
        &traits,
        Some(json!({"trait_key": "age", "value_type": "int", "integer_value": 41})),
    )
    .await;
    assert_eq!(
        (age["value_type"].clone(), age["integer_value"].clone()),
        (json!("int"), json!(41))
    );
    ok(
        &app,
        Method::POST,
        &traits,
        Some(json!({"trait_key": "plan", "value_type": "unicode", "string_value": "pro"})),
    )
    .await;
    let (_, identity) = app
        .get_json("/api/v1/identities/?identifier=ann", &key(&w.prod))
        .await;
    assert_eq!(identity["traits"].as_array().unwrap().len(), 2);
    let updated = ok(
        &app,
        Method::PUT,
        &format!("{traits}{}/", age["id"]),
        Some(json!({"value_type": "float", "float_value": 41.5})),
    )
    .await;
    assert_eq!(updated["float_value"], 41.5);
    // Deleting with deleteAllMatchingTraits removes the key from every identity.
    let bob = ok(&app, Method::GET, &format!("{base}?q=%22bob%22"), None).await["results"][0]["id"]
        .clone();
    ok(
        &app,
        Method::POST,
        &format!("{base}{bob}/traits/"),
        Some(json!({"trait_key": "age", "value_type": "int", "integer_value": 1})),
    )
    .await;
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("{traits}{}/?deleteAllMatchingTraits=true", age["id"]),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let left = ok(&app, Method::GET, &format!("{base}{bob}/traits/"), None).await;
    assert_eq!(left["count"], 0);
    let (status, _) = call(&app, Method::DELETE, &format!("{base}{}/", ann["id"]), None).await;
    assert_eq!(status, 204);
    assert_eq!(
        call(&app, Method::GET, &format!("{base}{}/", ann["id"]), None)
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn authorisation_by_token_and_organisation_keys() {
    let app = TestApp::empty().await;
    let w = world(&app).await;
    let other = ok(
        &app,
        Method::POST,
        "/api/v1/organisations/",
        Some(json!({"name": "Other"})),
    )
    .await;
    let keys = format!("/api/v1/organisations/{}/master-api-keys/", w.organisation);
    let admin_key = ok(&app, Method::POST, &keys, Some(json!({"name": "ci"}))).await;
    let full = admin_key["key"].as_str().unwrap().to_owned();
    assert!(full.starts_with(&format!("{}.", admin_key["prefix"].as_str().unwrap())));
    let listed = ok(&app, Method::GET, &keys, None).await;
    assert!(
        listed["results"][0].get("key").is_none(),
        "the key is shown once"
    );
    let read_key = ok(
        &app,
        Method::POST,
        &keys,
        Some(json!({"name": "ro", "is_admin": false})),
    )
    .await;
    let with = |k: &str| format!("Api-Key {k}");
    let send = |auth: String, method: Method, path: String, body: Option<Value>| {
        let mut request = app.request(method, &path).header("Authorization", auth);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let projects = format!("/api/v1/projects/{}/", w.project);
    assert_eq!(
        send(with(&full), Method::GET, projects.clone(), None).await,
        200
    );
    assert_eq!(
        send(
            with(&full),
            Method::GET,
            format!("/api/v1/organisations/{}/", other["id"]),
            None
        )
        .await,
        403
    );
    let new_feature = Some(json!({"name": "from_key"}));
    assert_eq!(
        send(
            with(&full),
            Method::POST,
            format!("{projects}features/"),
            new_feature.clone()
        )
        .await,
        201
    );
    let read_only = read_key["key"].as_str().unwrap().to_owned();
    assert_eq!(
        send(with(&read_only), Method::GET, projects.clone(), None).await,
        200
    );
    assert_eq!(
        send(
            with(&read_only),
            Method::POST,
            format!("{projects}features/"),
            Some(json!({"name": "nope"}))
        )
        .await,
        403
    );
    assert_eq!(
        send(
            with(&full),
            Method::POST,
            "/api/v1/organisations/".into(),
            Some(json!({"name": "x"}))
        )
        .await,
        403
    );
    assert_eq!(
        send(with(&full), Method::GET, keys.clone(), None).await,
        403,
        "keys cannot manage keys"
    );
    assert_eq!(
        send(
            "Api-Key nonsense".into(),
            Method::GET,
            projects.clone(),
            None
        )
        .await,
        401
    );
    let last = if full.ends_with('x') { 'y' } else { 'x' };
    let tampered = format!("{}{last}", &full[..full.len() - 1]);
    assert_eq!(
        send(with(&tampered), Method::GET, projects.clone(), None).await,
        401
    );
    assert_eq!(
        send("Token wrong".into(), Method::GET, projects.clone(), None).await,
        401
    );
    assert_eq!(
        app.request(Method::GET, &projects)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // Revoked and expired keys stop working.
    let prefix = admin_key["prefix"].as_str().unwrap();
    ok(
        &app,
        Method::PATCH,
        &format!("{keys}{prefix}/"),
        Some(json!({"revoked": true})),
    )
    .await;
    assert_eq!(
        send(with(&full), Method::GET, projects.clone(), None).await,
        401
    );
    let expiring = ok(
        &app,
        Method::POST,
        &keys,
        Some(json!({"name": "old", "expiry_date": "2001-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(
        send(
            with(expiring["key"].as_str().unwrap()),
            Method::GET,
            projects.clone(),
            None
        )
        .await,
        401
    );
    // Keys see only their organisation's projects.
    ok(
        &app,
        Method::POST,
        "/api/v1/projects/",
        Some(json!({"name": "Elsewhere", "organisation": other["id"]})),
    )
    .await;
    let response = app
        .request(Method::GET, "/api/v1/projects/")
        .header("Authorization", with(&read_only))
        .send()
        .await
        .unwrap();
    let visible: Value = response.json().await.unwrap();
    assert_eq!(visible.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_audit_log_records_who_what_and_before_after() {
    let app = TestApp::empty().await;
    let w = world(&app).await;
    let feature = ok(
        &app,
        Method::POST,
        &format!("/api/v1/projects/{}/features/", w.project),
        Some(json!({"name": "banner", "initial_value": "old"})),
    )
    .await;
    let state = default_state(&app, &w.prod, "banner").await;
    let key_body = ok(
        &app,
        Method::POST,
        &format!("/api/v1/organisations/{}/master-api-keys/", w.organisation),
        Some(json!({"name": "deployer"})),
    )
    .await;
    let response = app
        .request(
            Method::PATCH,
            &format!(
                "/api/v1/environments/{}/featurestates/{}/",
                key(&w.prod),
                state["id"]
            ),
        )
        .header(
            "Authorization",
            format!("Api-Key {}", key_body["key"].as_str().unwrap()),
        )
        .json(&json!({"feature_state_value": "new", "enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let log = ok(
        &app,
        Method::GET,
        &format!("/api/v1/audit/?environments={}", w.prod["id"]),
        None,
    )
    .await;
    let entry = &log["results"][0];
    assert_eq!(entry["related_object_type"], "FEATURE_STATE");
    assert!(
        entry["author"]["email"]
            .as_str()
            .unwrap()
            .contains("deployer")
    );
    assert_eq!(entry["previous_state"]["feature_state_value"], "old");
    assert_eq!(entry["new_state"]["feature_state_value"], "new");
    assert_eq!(entry["environment"]["api_key"], key(&w.prod));
    assert_eq!(entry["project"]["id"], w.project);
    let project_log = ok(
        &app,
        Method::GET,
        &format!("/api/v1/projects/{}/audit/?search=BANNER", w.project),
        None,
    )
    .await;
    let logs: Vec<&str> = project_log["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["log"].as_str().unwrap())
        .collect();
    assert!(
        logs.iter()
            .any(|l| l.contains("New Flag / Remote Config created: banner")),
        "{logs:?}"
    );
    assert!(logs.iter().all(|l| l.to_lowercase().contains("banner")));
    let organisation_log = ok(
        &app,
        Method::GET,
        &format!("/api/v1/organisations/{}/audit/", w.organisation),
        None,
    )
    .await;
    assert!(organisation_log["count"].as_u64().unwrap() >= 5);
    let _ = feature;

    // Filters: a change in Staging, then each filter keeps exactly what it names.
    let staging_state = default_state(&app, &w.staging, "banner").await;
    patch_state(&app, &w.staging, &staging_state, json!({"enabled": true})).await;
    let entries = |query: String| {
        let app = &app;
        async move {
            let log = ok(app, Method::GET, &format!("/api/v1/audit/?{query}"), None).await;
            log["results"].as_array().unwrap().clone()
        }
    };
    for (environment, other) in [(&w.prod, &w.staging), (&w.staging, &w.prod)] {
        let only = entries(format!("environments={}", environment["id"])).await;
        assert!(!only.is_empty());
        assert!(
            only.iter()
                .all(|e| e["environment"]["api_key"] == key(environment)),
            "{only:?}"
        );
        assert!(
            only.iter()
                .all(|e| e["environment"]["api_key"] != key(other))
        );
    }
    let everything = entries("page_size=999".into()).await;
    let states = entries("related_object_type=FEATURE_STATE&page_size=999".into()).await;
    assert_eq!(states.len(), 2, "{states:?}");
    assert!(
        states
            .iter()
            .all(|e| e["related_object_type"] == "FEATURE_STATE")
    );
    assert!(everything.len() > states.len());
    // Dates: everything happened today (UTC), so a range ending yesterday or starting tomorrow is
    // empty, and a range around today holds everything.
    let now = std::time::SystemTime::now();
    let day = Duration::from_secs(86_400);
    let (yesterday, tomorrow) = (utc_day(now - day), utc_day(now + day));
    assert!(entries(format!("to_date={yesterday}")).await.is_empty());
    assert!(entries(format!("from_date={tomorrow}")).await.is_empty());
    assert_eq!(
        entries(format!(
            "from_date={yesterday}&to_date={tomorrow}&page_size=999"
        ))
        .await
        .len(),
        everything.len()
    );
    let project_only = entries(format!("project={}&page_size=999", w.project)).await;
    assert!(project_only.iter().all(|e| e["project"]["id"] == w.project));
    assert!(
        project_only.len() < everything.len(),
        "organisation entries have no project"
    );

    // An import records the environment before and after.
    let document_path = format!("/api/v1/environments/{}/document/", key(&w.prod));
    let mut document = ok(&app, Method::GET, &document_path, None).await;
    document["name"] = json!("Production (imported)");
    ok(&app, Method::PUT, &document_path, Some(document)).await;
    let import = &entries(format!("environments={}", w.prod["id"])).await[0];
    assert_eq!(import["related_object_type"], "ENVIRONMENT");
    assert_eq!(import["previous_state"]["name"], "Production");
    assert_eq!(import["previous_state"]["features"], 1);
    assert_eq!(import["new_state"]["name"], "Production (imported)");
}

/// A webhook receiver: records every request, failing the first `failures` with 500.
async fn receiver(
    failures: usize,
) -> (
    String,
    mpsc::UnboundedReceiver<(axum::http::HeaderMap, String)>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let remaining = Arc::new(AtomicUsize::new(failures));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let tx = tx.clone();
            let remaining = remaining.clone();
            async move {
                let _ = tx.send((headers, body));
                if remaining
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, rx)
}

async fn next_hook(
    rx: &mut mpsc::UnboundedReceiver<(axum::http::HeaderMap, String)>,
) -> (axum::http::HeaderMap, String) {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("no webhook delivery")
        .unwrap()
}

/// The delivery log of a webhook once its newest delivery has `status`.
async fn delivery_log(app: &TestApp, deliveries: &str, status: &str) -> Value {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let log = ok(app, Method::GET, deliveries, None).await;
            if log["results"][0]["status"] == status {
                return log;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no delivery reached {status}"))
}

#[tokio::test]
async fn webhooks_are_signed_retried_and_logged() {
    let app = TestApp::with_limits(Limits {
        webhook_backoff: Duration::from_millis(20),
        ..Limits::default()
    })
    .await;
    let w = world(&app).await;
    let feature = ok(
        &app,
        Method::POST,
        &format!("/api/v1/projects/{}/features/", w.project),
        Some(json!({"name": "banner", "initial_value": "old", "default_enabled": true})),
    )
    .await;
    let (url, mut rx) = receiver(1).await;
    let hooks = format!("/api/v1/environments/{}/webhooks/", key(&w.prod));
    let hook = ok(
        &app,
        Method::POST,
        &hooks,
        Some(json!({"url": url, "secret": "s3cret"})),
    )
    .await;
    assert_eq!(
        call(&app, Method::POST, &hooks, Some(json!({"url": "ftp://x"})))
            .await
            .0,
        400
    );
    let state = default_state(&app, &w.prod, "banner").await;
    patch_state(&app, &w.prod, &state, json!({"feature_state_value": "new"})).await;
    // The first attempt fails (500), the retry succeeds; both carry the same signed body.
    let (first_headers, first_body) = next_hook(&mut rx).await;
    let (headers, body) = next_hook(&mut rx).await;
    assert_eq!(first_body, body);
    let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
    mac.update(body.as_bytes());
    let expected = hex::encode(mac.finalize().into_bytes());
    assert_eq!(headers["x-flagsmith-signature"], expected.as_str());
    assert_eq!(first_headers["x-flagsmith-signature"], expected.as_str());
    let payload: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(payload["event_type"], "FLAG_UPDATED");
    assert_eq!(
        payload["data"]["previous_state"]["feature_state_value"],
        "old"
    );
    assert_eq!(payload["data"]["new_state"]["feature_state_value"], "new");
    assert_eq!(payload["data"]["new_state"]["feature"]["name"], "banner");
    assert_eq!(
        payload["data"]["new_state"]["environment"]["name"],
        "Production"
    );
    assert_eq!(payload["data"]["changed_by"], "admin token");
    let deliveries = format!("{hooks}{}/deliveries/", hook["id"]);
    let log = delivery_log(&app, &deliveries, "delivered").await;
    assert_eq!(log["results"][0]["attempts"], 2);
    assert_eq!(log["results"][0]["last_status_code"], 200);
    // Deleting the feature sends FLAG_DELETED with the previous state only.
    ok(
        &app,
        Method::DELETE,
        &format!("/api/v1/projects/{}/features/{}/", w.project, feature["id"]),
        None,
    )
    .await;
    let (_, body) = next_hook(&mut rx).await;
    let payload: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(payload["event_type"], "FLAG_DELETED");
    assert_eq!(payload["data"]["new_state"], Value::Null);
    assert_eq!(
        payload["data"]["previous_state"]["feature"]["name"],
        "banner"
    );
    // A receiver that is down never blocks a write; its deliveries end as failed.
    let unreachable = json!({"url": "http://127.0.0.1:9/hook", "enabled": true});
    let app_fast = ok(&app, Method::POST, &hooks, Some(unreachable)).await;
    let feature = ok(
        &app,
        Method::POST,
        &format!("/api/v1/projects/{}/features/", w.project),
        Some(json!({"name": "other"})),
    )
    .await;
    assert!(feature["id"].is_i64());
    let failed = delivery_log(
        &app,
        &format!("{hooks}{}/deliveries/", app_fast["id"]),
        "failed",
    )
    .await;
    assert_eq!(failed["results"][0]["attempts"], 5);
}

/// A server with `limits` and a world whose project has the feature `banner`.
async fn banner_world(limits: Limits) -> (TestApp, World) {
    let app = TestApp::with_limits(limits).await;
    let w = world(&app).await;
    ok(
        &app,
        Method::POST,
        &format!("/api/v1/projects/{}/features/", w.project),
        Some(json!({"name": "banner"})),
    )
    .await;
    (app, w)
}

/// A webhook receiver that holds every request until the test adds a permit to the semaphore (then
/// answers 500), reporting when each request arrived.
async fn holding_receiver() -> (
    String,
    mpsc::UnboundedReceiver<tokio::time::Instant>,
    Arc<tokio::sync::Semaphore>,
) {
    let (arrived_tx, arrived) = mpsc::unbounded_channel::<tokio::time::Instant>();
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let held = release.clone();
    let hook = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let arrived_tx = arrived_tx.clone();
            let held = held.clone();
            async move {
                let _ = arrived_tx.send(tokio::time::Instant::now());
                held.acquire().await.unwrap().forget();
                axum::http::StatusCode::INTERNAL_SERVER_ERROR
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, hook).await.unwrap() });
    (url, arrived, release)
}

#[tokio::test]
async fn a_write_never_waits_for_a_webhook_and_retries_back_off() {
    let backoff = Duration::from_millis(20);
    // A delivery may wait an hour for its receiver: a write that waited for it would hang.
    let (app, w) = banner_world(Limits {
        webhook_backoff: backoff,
        webhook_timeout: Duration::from_secs(3600),
        ..Limits::default()
    })
    .await;
    let (url, mut arrived, release) = holding_receiver().await;
    let hooks = format!("/api/v1/environments/{}/webhooks/", key(&w.prod));
    let webhook = ok(&app, Method::POST, &hooks, Some(json!({"url": url}))).await;
    // The write returns while the receiver has not answered (it cannot: nothing has released it).
    let state = default_state(&app, &w.prod, "banner").await;
    patch_state(&app, &w.prod, &state, json!({"enabled": true})).await;
    // Now let every attempt fail at once: the gaps between attempts grow as the backoff doubles.
    release.add_permits(1000);
    let mut times = Vec::new();
    for _ in 0..5 {
        let at = tokio::time::timeout(Duration::from_secs(20), arrived.recv())
            .await
            .expect("an attempt arrives")
            .unwrap();
        times.push(at);
    }
    for (i, pair) in times.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        let least = backoff * (1 << i);
        assert!(
            gap >= least,
            "attempt {} came {gap:?} after the last, before {least:?}",
            i + 2
        );
    }
    let deliveries = format!("{hooks}{}/deliveries/", webhook["id"]);
    let failed = delivery_log(&app, &deliveries, "failed").await;
    assert_eq!(failed["results"][0]["attempts"], 5);
    assert_eq!(failed["results"][0]["last_status_code"], 500);
}

#[tokio::test]
async fn a_receiver_that_never_answers_delays_no_other_webhook() {
    // Deliveries may wait an hour for their receiver.
    let (app, w) = banner_world(Limits {
        webhook_timeout: Duration::from_secs(3600),
        ..Limits::default()
    })
    .await;
    // One receiver takes every request and never answers (nothing releases it).
    let (stuck_url, mut held, _never) = holding_receiver().await;
    let (url, mut rx) = receiver(0).await;
    let hooks = format!("/api/v1/environments/{}/webhooks/", key(&w.prod));
    ok(&app, Method::POST, &hooks, Some(json!({"url": stuck_url}))).await;
    ok(&app, Method::POST, &hooks, Some(json!({"url": url}))).await;
    let state = default_state(&app, &w.prod, "banner").await;
    for value in ["first", "second", "third"] {
        patch_state(&app, &w.prod, &state, json!({"feature_state_value": value})).await;
        // The held receiver has this change, and does not answer...
        tokio::time::timeout(Duration::from_secs(20), held.recv())
            .await
            .expect("the stuck receiver is called")
            .unwrap();
        // ...while the other receives it all the same.
        let (_, body) = next_hook(&mut rx).await;
        let payload: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(payload["data"]["new_state"]["feature_state_value"], value);
    }
}

#[tokio::test]
async fn webhook_states_carry_multivariate_allocations_and_are_unsigned_without_a_secret() {
    let app = TestApp::empty().await;
    let w = world(&app).await;
    let feature = ok(
        &app,
        Method::POST,
        &format!("/api/v1/projects/{}/features/", w.project),
        Some(json!({
        "name": "checkout", "initial_value": "classic", "default_enabled": true,
        "multivariate_options": [
            {"type": "unicode", "string_value": "express", "default_percentage_allocation": 25},
        ]})),
    )
    .await;
    let option = feature["multivariate_options"][0]["id"].clone();
    let (url, mut rx) = receiver(0).await;
    let hooks = format!("/api/v1/environments/{}/webhooks/", key(&w.prod));
    ok(&app, Method::POST, &hooks, Some(json!({"url": url}))).await;
    let state = default_state(&app, &w.prod, "checkout").await;
    let path = format!(
        "/api/v1/environments/{}/featurestates/{}/",
        key(&w.prod),
        state["id"]
    );
    ok(
        &app,
        Method::PATCH,
        &path,
        Some(json!({"multivariate_feature_state_values": [
        {"multivariate_feature_option": option, "percentage_allocation": 60}]})),
    )
    .await;
    let (headers, body) = next_hook(&mut rx).await;
    assert!(!headers.contains_key("x-flagsmith-signature"));
    let payload: Value = serde_json::from_str(&body).unwrap();
    let allocation = |state: &str| -> (Value, Value) {
        let values = &payload["data"][state]["multivariate_feature_state_values"];
        assert_eq!(values.as_array().unwrap().len(), 1, "{payload}");
        (
            values[0]["multivariate_feature_option"].clone(),
            values[0]["percentage_allocation"].clone(),
        )
    };
    assert_eq!(allocation("previous_state"), (option.clone(), json!(25.0)));
    assert_eq!(allocation("new_state"), (option.clone(), json!(60.0)));

    // A new option changes the variants every environment serves: Production's hook hears of it,
    // with the option's allocation added to the state.
    let options = format!(
        "/api/v1/projects/{}/features/{}/mv-options/",
        w.project, feature["id"]
    );
    let added = ok(
        &app,
        Method::POST,
        &options,
        Some(json!({"type": "unicode", "string_value": "one_page",
            "default_percentage_allocation": 10})),
    )
    .await;
    let (_, body) = next_hook(&mut rx).await;
    let payload: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(payload["event_type"], "FLAG_UPDATED");
    let options_of = |payload: &Value, state: &str| -> Vec<(Value, Value)> {
        let mut values: Vec<(Value, Value)> =
            payload["data"][state]["multivariate_feature_state_values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| {
                    (
                        v["multivariate_feature_option"].clone(),
                        v["percentage_allocation"].clone(),
                    )
                })
                .collect();
        values.sort_by_key(|(option, _)| option.as_i64());
        values
    };
    assert_eq!(
        options_of(&payload, "previous_state"),
        vec![(option.clone(), json!(60.0))]
    );
    assert_eq!(
        options_of(&payload, "new_state"),
        vec![
            (option.clone(), json!(60.0)),
            (added["id"].clone(), json!(10.0))
        ]
    );
    // Removing it takes it out again.
    ok(
        &app,
        Method::DELETE,
        &format!("{options}{}/", added["id"]),
        None,
    )
    .await;
    let (_, body) = next_hook(&mut rx).await;
    let payload: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(payload["event_type"], "FLAG_UPDATED");
    assert_eq!(
        options_of(&payload, "new_state"),
        vec![(option.clone(), json!(60.0))]
    );
    assert_eq!(options_of(&payload, "previous_state").len(), 2);

    // A document import that turns the flag off sends FLAG_UPDATED for that flag alone.
    let document_path = format!("/api/v1/environments/{}/document/", key(&w.prod));
    let mut document = ok(&app, Method::GET, &document_path, None).await;
    let states = document["feature_states"].as_array_mut().unwrap();
    assert_eq!(states.len(), 1);
    states[0]["enabled"] = json!(false);
    ok(&app, Method::PUT, &document_path, Some(document)).await;
    let (_, body) = next_hook(&mut rx).await;
    let payload: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(payload["event_type"], "FLAG_UPDATED");
    assert_eq!(payload["data"]["new_state"]["feature"]["name"], "checkout");
    assert_eq!(payload["data"]["previous_state"]["enabled"], true);
    assert_eq!(payload["data"]["new_state"]["enabled"], false);
    // Re-importing the same document changes no flag, so it sends nothing: the next event the
    // receiver gets is the one after it.
    let document = ok(&app, Method::GET, &document_path, None).await;
    ok(&app, Method::PUT, &document_path, Some(document)).await;
    let state = default_state(&app, &w.prod, "checkout").await;
    patch_state(
        &app,
        &w.prod,
        &state,
        json!({"feature_state_value": "after the re-import"}),
    )
    .await;
    let (_, body) = next_hook(&mut rx).await;
    let payload: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        payload["data"]["new_state"]["feature_state_value"],
        "after the re-import"
    );
}

#[tokio::test]
async fn bad_input_to_every_other_resource_is_a_400_that_leaves_nothing_behind() {
    let app = TestApp::empty().await;
    let w = world(&app).await;
    let prod_key = key(&w.prod);
    let feature = ok(
        &app,
        Method::POST,
        &format!("/api/v1/projects/{}/features/", w.project),
        Some(json!({
        "name": "checkout", "multivariate_options": [
            {"type": "unicode", "string_value": "express", "default_percentage_allocation": 25}]})),
    )
    .await;
    let feature_id = feature["id"].as_i64().unwrap();
    let option = feature["multivariate_options"][0]["id"].clone();
    let segment = ok(
        &app,
        Method::POST,
        &format!("/api/v1/projects/{}/segments/", w.project),
        Some(json!({
        "name": "pros", "rules": [{"type": "ALL", "conditions": [
            {"operator": "EQUAL", "property": "plan", "value": "pro"}]}]})),
    )
    .await;
    let (_, pat) = app
        .post_json(
            "/api/v1/identities/",
            &prod_key,
            &json!({"identifier": "pat"}),
        )
        .await;
    assert_eq!(pat["identifier"], "pat");
    let identities = ok(
        &app,
        Method::GET,
        &format!("/api/v1/environments/{prod_key}/identities/?q=pat"),
        None,
    )
    .await;
    let pat_id = identities["results"][0]["id"].as_i64().unwrap();
    let audit_count = || async {
        ok(&app, Method::GET, "/api/v1/audit/", None).await["count"]
            .as_i64()
            .unwrap()
    };
    let audited = audit_count().await;

    let override_path =
        format!("/api/v1/environments/{prod_key}/features/{feature_id}/create-segment-override/");
    let cases: Vec<(Method, String, Value, &str)> = vec![
        (
            Method::POST,
            "/api/v1/organisations/".into(),
            json!({"name": ""}),
            "name",
        ),
        (
            Method::POST,
            "/api/v1/organisations/".into(),
            json!({"name": 7}),
            "name",
        ),
        (
            Method::POST,
            "/api/v1/projects/".into(),
            json!({"name": "P"}),
            "organisation",
        ),
        (
            Method::POST,
            "/api/v1/projects/".into(),
            json!({"name": "P", "organisation": "x"}),
            "organisation",
        ),
        (
            Method::POST,
            format!("/api/v1/organisations/{}/master-api-keys/", w.organisation),
            json!({"name": "k", "expiry_date": "not a date"}),
            "expiry_date",
        ),
        (
            Method::POST,
            "/api/v1/features/feature-segments/".into(),
            json!({"feature": feature_id, "environment": w.prod["id"]}),
            "segment",
        ),
        // A refused allocation must not leave the segment link behind.
        (
            Method::POST,
            override_path.clone(),
            json!({"feature_segment": {"segment": segment["id"]},
            "multivariate_feature_state_values": [
                {"multivariate_feature_option": option, "percentage_allocation": 101}]}),
            "multivariate_feature_state_values",
        ),
        (
            Method::POST,
            override_path.clone(),
            json!({"feature_segment": {"segment": segment["id"], "priority": -1}}),
            "feature_segment",
        ),
        (
            Method::POST,
            override_path.clone(),
            json!({"feature_segment": {"segment": "pros"}}),
            "feature_segment",
        ),
        (
            Method::POST,
            override_path.clone(),
            json!({"enabled": true}),
            "feature_segment",
        ),
        (
            Method::POST,
            format!("/api/v1/environments/{prod_key}/identities/{pat_id}/featurestates/"),
            json!({"feature_state_value": "x"}),
            "feature",
        ),
        (
            Method::POST,
            format!("/api/v1/environments/{prod_key}/identities/{pat_id}/featurestates/"),
            json!({"feature": feature_id, "feature_state_value": {"nested": true}}),
            "feature_state_value",
        ),
    ];
    for (method, path, body, field) in &cases {
        let (status, error) = call(&app, method.clone(), path, Some(body.clone())).await;
        assert_eq!(status, 400, "{method} {path} {body}: {error}");
        assert!(
            error.get(*field).is_some(),
            "{method} {path} {body}: {error} names {field}"
        );
    }
    let (status, error) = call(
        &app,
        Method::POST,
        "/api/v1/features/feature-segments/update-priorities/",
        Some(json!({"id": 1, "priority": 0})),
    )
    .await;
    assert_eq!(status, 400, "{error}");

    // Nothing was created or changed by any of them.
    let links = ok(
        &app,
        Method::GET,
        &format!(
            "/api/v1/features/feature-segments/?environment={}&feature={feature_id}",
            w.prod["id"]
        ),
        None,
    )
    .await;
    assert_eq!(links["count"], 0, "{links}");
    let overrides = ok(
        &app,
        Method::GET,
        &format!("/api/v1/environments/{prod_key}/identities/{pat_id}/featurestates/"),
        None,
    )
    .await;
    assert_eq!(overrides.as_array().map_or(0, Vec::len), 0, "{overrides}");
    let organisations = ok(&app, Method::GET, "/api/v1/organisations/", None).await;
    assert_eq!(organisations["count"], 1);
    assert_eq!(audit_count().await, audited);
}

#[tokio::test]
async fn an_organisation_key_reaches_nothing_of_another_organisation() {
    let app = TestApp::empty().await;
    let w = world(&app).await;
    let prod_key = key(&w.prod);
    let feature = ok(
        &app,
        Method::POST,
        &format!("/api/v1/projects/{}/features/", w.project),
        Some(json!({"name": "banner"})),
    )
    .await;
    let segment = ok(
        &app,
        Method::POST,
        &format!("/api/v1/projects/{}/segments/", w.project),
        Some(json!({
        "name": "pros", "rules": [{"type": "ALL", "conditions": [
            {"operator": "EQUAL", "property": "plan", "value": "pro"}]}]})),
    )
    .await;
    app.post_json(
        "/api/v1/identities/",
        &prod_key,
        &json!({"identifier": "pat"}),
    )
    .await;
    // A key of another organisation, with admin rights there.
    let other = ok(
        &app,
        Method::POST,
        "/api/v1/organisations/",
        Some(json!({"name": "Other"})),
    )
    .await;
    let stranger = ok(
        &app,
        Method::POST,
        &format!("/api/v1/organisations/{}/master-api-keys/", other["id"]),
        Some(json!({"name": "theirs"})),
    )
    .await;
    let stranger = format!("Api-Key {}", stranger["key"].as_str().unwrap());
    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::GET,
            format!("/api/v1/environments/{prod_key}/"),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/environments/{prod_key}/"),
            Some(json!({"name": "x"})),
        ),
        (
            Method::GET,
            format!("/api/v1/environments/{prod_key}/document/"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/environments/{prod_key}/identities/"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/environments/{prod_key}/identities/"),
            Some(json!({"identifier": "eve"})),
        ),
        (
            Method::GET,
            format!("/api/v1/environments/{prod_key}/featurestates/"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/environments/{prod_key}/webhooks/"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/environments/{prod_key}/webhooks/"),
            Some(json!({"url": "http://127.0.0.1:9/"})),
        ),
        (
            Method::GET,
            format!("/api/v1/environments/{prod_key}/api-keys/"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/projects/{}/segments/", w.project),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/v1/projects/{}/segments/{}/", w.project, segment["id"]),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/v1/projects/{}/features/{}/", w.project, feature["id"]),
            None,
        ),
        (
            Method::POST,
            "/api/v1/features/feature-segments/".into(),
            Some(json!({
            "feature": feature["id"], "segment": segment["id"], "environment": w.prod["id"]})),
        ),
        (
            Method::GET,
            format!("/api/v1/projects/{}/audit/", w.project),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/audit/?project={}", w.project),
            None,
        ),
    ];
    for (method, path, body) in attempts {
        let mut request = app
            .request(method.clone(), &path)
            .header("Authorization", &stranger);
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        // Either refused or, for lists across organisations, empty.
        let empty = status == 200 && answer["count"] == 0;
        assert!(
            status == 403 || status == 404 || empty,
            "{method} {path}: {status} {answer}"
        );
    }
    // The organisation list shows the key's own organisation only.
    let request = app
        .request(Method::GET, "/api/v1/organisations/")
        .header("Authorization", &stranger);
    let listed: Value = request.send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["results"][0]["name"], "Other");
    // Everything is still there.
    let segments = ok(
        &app,
        Method::GET,
        &format!("/api/v1/projects/{}/segments/", w.project),
        None,
    )
    .await;
    assert_eq!(segments["count"], 1);
    let environment = ok(
        &app,
        Method::GET,
        &format!("/api/v1/environments/{prod_key}/"),
        None,
    )
    .await;
    assert_eq!(environment["name"], "Production");
}

#[tokio::test]
async fn project_settings_shape_new_features() {
    let app = TestApp::empty().await;
    let w = world(&app).await;
    let project = format!("/api/v1/projects/{}/", w.project);
    let features = format!("{project}features/");
    // Defaults, as Flagsmith reads them.
    let read = ok(&app, Method::GET, &project, None).await;
    assert_eq!(
        (
            read["prevent_flag_defaults"].clone(),
            read["only_allow_lower_case_feature_names"].clone(),
            read["feature_name_regex"].clone(),
            read["stale_flags_limit_days"].clone()
        ),
        (json!(false), json!(false), Value::Null, json!(30))
    );
    for bad in [
        json!({"feature_name_regex": "(unclosed"}),
        json!({"stale_flags_limit_days": 0}),
        json!({"prevent_flag_defaults": "yes"}),
    ] {
        let (status, error) = call(&app, Method::PATCH, &project, Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad}: {error}");
    }
    let changed = ok(
        &app,
        Method::PATCH,
        &project,
        Some(json!({
        "prevent_flag_defaults": true, "only_allow_lower_case_feature_names": true,
        "feature_name_regex": "[a-z]+_[a-z_]+$", "stale_flags_limit_days": 14})),
    )
    .await;
    assert_eq!(changed["feature_name_regex"], "[a-z]+_[a-z_]+$");
    assert_eq!(changed["stale_flags_limit_days"], 14);

    // Names break the rules: upper case, or not matching the pattern (from its start).
    for name in ["New_Checkout", "checkout", "1_checkout"] {
        let (status, error) =
            call(&app, Method::POST, &features, Some(json!({"name": name}))).await;
        assert_eq!(status, 400, "{name}: {error}");
        assert!(error["name"][0].is_string(), "{error}");
    }
    // A good name; its defaults stay on the feature, every environment starts off and empty.
    let feature = ok(
        &app,
        Method::POST,
        &features,
        Some(json!({"name": "new_checkout", "default_enabled": true, "initial_value": "fast"})),
    )
    .await;
    assert_eq!(feature["initial_value"], "fast");
    for environment in [&w.prod, &w.staging] {
        let state = default_state(&app, environment, "new_checkout").await;
        assert_eq!(
            (
                state["enabled"].clone(),
                state["feature_state_value"].clone()
            ),
            (json!(false), Value::Null)
        );
    }
    // Renames follow the rules too; clearing the pattern lifts it.
    let path = format!("{features}{}/", feature["id"]);
    let (status, _) = call(
        &app,
        Method::PATCH,
        &path,
        Some(json!({"name": "Checkout_v2"})),
    )
    .await;
    assert_eq!(status, 400);
    ok(
        &app,
        Method::PATCH,
        &project,
        Some(json!({"feature_name_regex": null})),
    )
    .await;
    ok(
        &app,
        Method::POST,
        &features,
        Some(json!({"name": "checkout"})),
    )
    .await;
}

#[tokio::test]
async fn an_identity_override_can_name_its_identity_by_identifier() {
    let app = TestApp::empty().await;
    let w = world(&app).await;
    let prod_key = key(&w.prod);
    let feature = ok(
        &app,
        Method::POST,
        &format!("/api/v1/projects/{}/features/", w.project),
        Some(json!({"name": "banner", "initial_value": "plain"})),
    )
    .await;
    let created = ok(
        &app,
        Method::POST,
        "/api/v1/features/featurestates/",
        Some(json!({
        "feature": feature["id"], "environment": w.prod["id"], "identifier": "zed", "enabled": true,
        "feature_state_value": {"type": "unicode", "string_value": "for zed"}})),
    )
    .await;
    assert_eq!(created["identity"]["identifier"], "zed", "{created}");
    let (_, zed) = app
        .get_json("/api/v1/identities/?identifier=zed", &prod_key)
        .await;
    assert_eq!(flag_map(&zed["flags"])["banner"], (true, json!("for zed")));
    // A refused request creates no identity.
    let (status, _) = call(
        &app,
        Method::POST,
        "/api/v1/features/featurestates/",
        Some(json!({
        "feature": 999_999, "environment": w.prod["id"], "identifier": "ghost"})),
    )
    .await;
    assert_eq!(status, 400);
    let ghosts = ok(
        &app,
        Method::GET,
        &format!("/api/v1/environments/{prod_key}/identities/?q=ghost"),
        None,
    )
    .await;
    assert_eq!(ghosts["count"], 0);
}

#[tokio::test]
async fn a_blank_name_in_an_update_is_refused() {
    let app = TestApp::empty().await;
    let w = world(&app).await;
    let feature = ok(
        &app,
        Method::POST,
        &format!("/api/v1/projects/{}/features/", w.project),
        Some(json!({"name": "banner"})),
    )
    .await;
    let paths = [
        format!("/api/v1/organisations/{}/", w.organisation),
        format!("/api/v1/projects/{}/", w.project),
        format!("/api/v1/environments/{}/", key(&w.prod)),
        format!("/api/v1/projects/{}/features/{}/", w.project, feature["id"]),
    ];
    for path in &paths {
        for (method, name) in [
            (Method::PATCH, json!("  ")),
            (Method::PUT, json!("")),
            (Method::PATCH, Value::Null),
        ] {
            let (status, body) =
                call(&app, method.clone(), path, Some(json!({ "name": name }))).await;
            assert_eq!(status, 400, "{method} {path} {name}: {body}");
            assert!(body["name"][0].is_string(), "{body}");
        }
        // Nothing changed; leaving the name out keeps it.
        let current = ok(&app, Method::GET, path, None).await;
        assert!(!current["name"].as_str().unwrap().trim().is_empty());
        let kept = ok(&app, Method::PATCH, path, Some(json!({}))).await;
        assert_eq!(kept["name"], current["name"]);
    }
}

#[tokio::test]
async fn deleting_an_environment_stops_its_keys_and_streams() {
    let app = TestApp::empty().await;
    let w = world(&app).await;
    let prod_key = key(&w.prod);
    let server = app.server_key(&prod_key).await;
    let mut stream = app
        .request(Method::GET, &format!("/sse/environments/{prod_key}/stream"))
        .send()
        .await
        .unwrap();
    stream.chunk().await.unwrap();
    let clone = ok(
        &app,
        Method::POST,
        &format!("/api/v1/environments/{prod_key}/clone/"),
        Some(json!({"name": "Copy"})),
    )
    .await;
    assert_eq!(app.get_json("/api/v1/flags/", &key(&clone)).await.0, 200);
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/environments/{prod_key}/"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(app.get_json("/api/v1/flags/", &prod_key).await.0, 403);
    assert_eq!(
        app.get_json("/api/v1/environment-document/", &server)
            .await
            .0,
        403
    );
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await
    .expect("the stream ends");
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/projects/{}/", w.project),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        app.get_json("/api/v1/flags/", &key(&w.staging)).await.0,
        403
    );
}

#[tokio::test]
async fn the_openapi_document_describes_both_apis() {
    let app = TestApp::empty().await;
    let response = app
        .request(Method::GET, "/api/v1/openapi.json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document["paths"].as_object().unwrap();
    for path in [
        "/api/v1/flags",
        "/api/v1/identities",
        "/api/v1/environment-document",
        "/sse/environments/{key}/stream",
        "/api/v1/projects/{project}/features",
        "/api/v1/projects/{project}/segments",
        "/api/v1/features/feature-segments/update-priorities",
        "/api/v1/audit",
        "/api/v1/environments/{api_key}/webhooks",
    ] {
        assert!(paths.contains_key(path), "{path} is documented");
    }
    assert!(paths["/api/v1/identities"].get("post").is_some());
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for schema in [
        "Feature",
        "Segment",
        "SegmentRule",
        "Flag",
        "IdentityResponse",
        "AuditLogEntry",
    ] {
        assert!(schemas.contains_key(schema), "{schema}");
    }
    assert!(
        document["components"]["securitySchemes"]
            .get("environment_key")
            .is_some()
    );
}

#[tokio::test]
async fn settings_of_organisations_projects_and_environments_reach_the_sdk() {
    let app = TestApp::empty().await;
    let w = world(&app).await;
    let prod_key = key(&w.prod);
    ok(
        &app,
        Method::POST,
        &format!("/api/v1/projects/{}/features/", w.project),
        Some(json!({"name": "on"})),
    )
    .await;
    ok(
        &app,
        Method::POST,
        &format!("/api/v1/projects/{}/features/", w.project),
        Some(json!({"name": "secret", "is_server_key_only": true, "default_enabled": true})),
    )
    .await;
    let (_, flags) = app.get_json("/api/v1/flags/", &prod_key).await;
    assert_eq!(
        flag_map(&flags).keys().collect::<Vec<_>>(),
        vec!["on"],
        "server-key-only features are hidden"
    );

    // Project: hide disabled flags.
    let project = ok(
        &app,
        Method::PATCH,
        &format!("/api/v1/projects/{}/", w.project),
        Some(json!({"hide_disabled_flags": true})),
    )
    .await;
    assert_eq!(project["hide_disabled_flags"], true);
    let (_, flags) = app.get_json("/api/v1/flags/", &prod_key).await;
    assert!(flags.as_array().unwrap().is_empty());
    // The environment's setting overrides the project's.
    let environment = ok(
        &app,
        Method::PATCH,
        &format!("/api/v1/environments/{prod_key}/"),
        Some(json!({"hide_disabled_flags": false, "allow_client_traits": false, "name": "Prod"})),
    )
    .await;
    assert_eq!(
        (
            environment["name"].clone(),
            environment["allow_client_traits"].clone()
        ),
        (json!("Prod"), json!(false))
    );
    let (_, flags) = app.get_json("/api/v1/flags/", &prod_key).await;
    assert_eq!(flags.as_array().unwrap().len(), 1);
    let body = json!({"identity": {"identifier": "a"}, "trait_key": "k", "trait_value": 1});
    assert_eq!(
        app.post_json("/api/v1/traits/", &prod_key, &body).await.0,
        400
    );
    let (_, flags) = app.get_json("/api/v1/flags/", &key(&w.staging)).await;
    assert!(
        flags.as_array().unwrap().is_empty(),
        "staging follows the project"
    );

    // Organisation: stop serving flags, and trait persistence.
    ok(
        &app,
        Method::PATCH,
        &format!("/api/v1/organisations/{}/", w.organisation),
        Some(json!({"stop_serving_flags": true})),
    )
    .await;
    assert_eq!(app.get_json("/api/v1/flags/", &prod_key).await.0, 403);
    ok(
        &app,
        Method::PATCH,
        &format!("/api/v1/organisations/{}/", w.organisation),
        Some(json!({"stop_serving_flags": false, "persist_trait_data": false})),
    )
    .await;
    assert_eq!(app.get_json("/api/v1/flags/", &prod_key).await.0, 200);
    let staging_body = json!({"identity": {"identifier": "a"}, "trait_key": "k", "trait_value": 1});
    let (status, _) = app
        .post_json("/api/v1/traits/", &key(&w.staging), &staging_body)
        .await;
    assert_eq!(status, 403);

    // Renaming a feature keeps names unique; updating an option keeps allocations valid.
    let features = format!("/api/v1/projects/{}/features/", w.project);
    let listed = ok(&app, Method::GET, &features, None).await;
    let on = listed["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "on")
        .unwrap()["id"]
        .clone();
    let (status, error) = call(
        &app,
        Method::PATCH,
        &format!("{features}{on}/"),
        Some(json!({"name": "SECRET"})),
    )
    .await;
    assert_eq!(status, 400, "{error}");
    let renamed = ok(
        &app,
        Method::PATCH,
        &format!("{features}{on}/"),
        Some(json!({"name": "on_v2", "description": "d"})),
    )
    .await;
    assert_eq!(
        (renamed["name"].clone(), renamed["description"].clone()),
        (json!("on_v2"), json!("d"))
    );
    let option = ok(
        &app,
        Method::POST,
        &format!("{features}{on}/mv-options/"),
        Some(json!({"type": "unicode", "string_value": "a", "default_percentage_allocation": 10})),
    )
    .await;
    let updated = ok(
        &app,
        Method::PATCH,
        &format!("{features}{on}/mv-options/{}/", option["id"]),
        Some(json!({"string_value": "b"})),
    )
    .await;
    assert_eq!(
        (
            updated["string_value"].clone(),
            updated["default_percentage_allocation"].clone()
        ),
        (json!("b"), json!(10.0))
    );
    let (status, _) = call(
        &app,
        Method::PATCH,
        &format!("{features}{on}/mv-options/{}/", option["id"]),
        Some(json!({"default_percentage_allocation": 101})),
    )
    .await;
    assert_eq!(status, 400);
    // Webhooks can be changed and removed.
    let hooks = format!("/api/v1/environments/{prod_key}/webhooks/");
    let hook = ok(
        &app,
        Method::POST,
        &hooks,
        Some(json!({"url": "http://127.0.0.1:9/x"})),
    )
    .await;
    let changed = ok(
        &app,
        Method::PATCH,
        &format!("{hooks}{}/", hook["id"]),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(
        (changed["enabled"].clone(), changed["url"].clone()),
        (json!(false), hook["url"].clone())
    );
    assert_eq!(
        call(
            &app,
            Method::DELETE,
            &format!("{hooks}{}/", hook["id"]),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(ok(&app, Method::GET, &hooks, None).await, json!([]));
}
