//! Flag analytics, v1 and v2.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{KEY, TestApp, utc_day};

/// The flag of the feature named `feature` in the sample environment's `flags/`.
async fn flag(app: &TestApp, feature: &str) -> Value {
    let (_, flags) = app.get_json("/api/v1/flags/", KEY).await;
    flags
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"]["name"] == feature)
        .unwrap()
        .clone()
}

/// A feature's id, as text (the legacy analytics key).
async fn feature_id(app: &TestApp, feature: &str) -> String {
    flag(app, feature).await["feature"]["id"].to_string()
}

pub(crate) async fn counts(app: &TestApp, feature: &str) -> Vec<Value> {
    let flag = flag(app, feature).await;
    let (feature_id, project) = (
        flag["feature"]["id"].clone(),
        flag["feature"]["project"].clone(),
    );
    app.admin(
        Method::GET,
        &format!(
            "/api/v1/projects/{project}/features/{feature_id}/evaluation-data/?environment_id={KEY}"
        ),
    )
    .send()
    .await
    .unwrap()
    .json::<Value>()
    .await
    .unwrap()
    .as_array()
    .unwrap()
    .clone()
}

#[tokio::test]
async fn counts_are_stored_per_feature_per_day() {
    let today_before = utc_day(std::time::SystemTime::now());
    let app = TestApp::sample().await;
    let font_id = feature_id(&app, "font_size").await;
    let body =
        json!({"header": 3, "font_size": 2, "unknown_feature": 5, "dark_mode": "x", font_id: 1});
    let response = app
        .sdk(Method::POST, "/api/v1/analytics/flags/", KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.unwrap().is_empty());
    app.sdk(Method::POST, "/api/v1/analytics/flags/", KEY)
        .json(&json!({"header": 4}))
        .send()
        .await
        .unwrap();
    let header = counts(&app, "header").await;
    assert_eq!(header.len(), 1);
    assert_eq!(header[0]["count"], 7);
    // Counted under today's date (UTC), whichever side of midnight the requests fell.
    let day = header[0]["day"].as_str().unwrap();
    assert!(
        [today_before, utc_day(std::time::SystemTime::now())].contains(&day.to_owned()),
        "{day}"
    );
    assert_eq!(
        counts(&app, "font_size").await[0]["count"],
        3,
        "names and legacy ids both count"
    );
    assert!(counts(&app, "dark_mode").await.is_empty());

    let v2 = json!({"evaluations": [
        {"feature_name": "dark_mode", "identity_identifier": "u", "enabled_when_evaluated": false, "count": 9}
    ]});
    let response = app
        .sdk(Method::POST, "/api/v2/analytics/flags/", KEY)
        .json(&v2)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(counts(&app, "dark_mode").await[0]["count"], 9);

    let (status, error) = app
        .post_json("/api/v1/analytics/flags/", KEY, &json!([1, 2]))
        .await;
    assert_eq!(
        (status, error),
        (
            400,
            json!({"non_field_errors": ["Expected a JSON object."]})
        )
    );
}

#[tokio::test]
async fn huge_counts_saturate_instead_of_failing() {
    let app = TestApp::sample().await;
    let header_id = feature_id(&app, "header").await;
    // The name and the legacy id of one feature, each at the largest count JSON can carry as an
    // i64: their sum overflows within the request.
    let body = json!({"header": i64::MAX, header_id: i64::MAX});
    for _ in 0..2 {
        // And a second request overflows the stored total.
        let (status, _) = app.post_json("/api/v1/analytics/flags/", KEY, &body).await;
        assert_eq!(status, 200);
    }
    let v2 = json!({"evaluations": [{"feature_name": "header", "count": i64::MAX}]});
    let (status, _) = app.post_json("/api/v2/analytics/flags/", KEY, &v2).await;
    assert_eq!(status, 204);
    let header = counts(&app, "header").await;
    assert_eq!(header.len(), 1);
    assert_eq!(header[0]["count"], json!(i64::MAX));
}
