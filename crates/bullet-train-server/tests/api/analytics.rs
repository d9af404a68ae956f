//! Flag analytics, v1 and v2.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{KEY, TestApp};

pub(crate) async fn counts(app: &TestApp, feature: &str) -> Vec<Value> {
    let (_, flags) = app.get_json("/api/v1/flags/", KEY).await;
    let flag = flags
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"]["name"] == feature)
        .unwrap();
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

/// Today's date in UTC as `YYYY-MM-DD`, read from an HTTP date ("Fri, 27 Nov 2026 14:58:00 GMT").
fn utc_today() -> String {
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let parts: Vec<&str> = date.split(' ').collect();
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months.iter().position(|m| *m == parts[2]).unwrap() + 1;
    format!("{}-{month:02}-{}", parts[3], parts[1])
}

#[tokio::test]
async fn counts_are_stored_per_feature_per_day() {
    let today_before = utc_today();
    let app = TestApp::sample().await;
    let (_, flags) = app.get_json("/api/v1/flags/", KEY).await;
    let font_id = flags
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"]["name"] == "font_size")
        .unwrap()["feature"]["id"]
        .to_string();
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
        [today_before, utc_today()].contains(&day.to_owned()),
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
