//! The Flagsmith conformance corpus (vendored under `tests/data/engine-test-data`), one test per case:
//! every v2 evaluation-context file, and every identity of the v1 environment-document fixture.

use std::path::{Path, PathBuf};

use bullet_train_engine::{Identity, Snapshot};
use bullet_train_protocol::document::DocumentTrait;
use bullet_train_protocol::{EnvironmentDocument, EvaluationContext, EvaluationResult, Value};
use libtest_mimic::{Arguments, Failed, Trial};
use serde::Deserialize;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/engine-test-data")
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = v2_trials();
    trials.extend(v1_trials());
    libtest_mimic::run(&args, trials).exit();
}

/// Removes `//` line comments outside strings (the `.jsonc` files have no other JSON5 syntax).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_string = false;
        let mut escaped = false;
        let mut end = line.len();
        let bytes = line.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            if in_string {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
            } else if b == b'"' {
                in_string = true;
            } else if b == b'/' && bytes.get(i + 1) == Some(&b'/') {
                end = i;
                break;
            }
        }
        out.push_str(&line[..end]);
        out.push('\n');
    }
    out
}

#[derive(Deserialize)]
struct Case {
    context: EvaluationContext,
    result: EvaluationResult,
}

fn v2_trials() -> Vec<Trial> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(data_dir().join("test_cases"))
        .expect("vendored test_cases directory")
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    paths.sort();
    assert_eq!(paths.len(), 199, "the corpus holds 199 v2 cases");
    paths
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            Trial::test(format!("v2::{name}"), move || run_v2_case(&path))
        })
        .collect()
}

fn run_v2_case(path: &Path) -> Result<(), Failed> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("read: {e}"))?;
    let case: Case =
        serde_json::from_str(&strip_comments(&text)).map_err(|e| format!("parse: {e}"))?;
    let snapshot = Snapshot::from_context(&case.context);
    let traits: Vec<(&str, &Value)> = case
        .context
        .identity
        .iter()
        .flat_map(|i| i.traits.iter().map(|(k, v)| (k.as_str(), v)))
        .collect();
    let identity = case.context.identity.as_ref().map(|i| Identity {
        identifier: &i.identifier,
        key: i.key.as_deref(),
        traits: &traits,
        overrides: None,
    });
    let actual = snapshot.evaluate(identity.as_ref()).to_result();
    if actual != case.result {
        return Err(format!(
            "result differs\nexpected: {}\nactual:   {}\nwarnings: {:?}",
            serde_json::to_string(&case.result).unwrap(),
            serde_json::to_string(&actual).unwrap(),
            snapshot.warnings(),
        )
        .into());
    }
    Ok(())
}

#[derive(Deserialize)]
struct Fixture {
    environment: EnvironmentDocument,
    identities_and_responses: Vec<IdentityCase>,
}

#[derive(Deserialize)]
struct IdentityCase {
    identity: FixtureIdentity,
    response: FixtureResponse,
}

#[derive(Deserialize)]
struct FixtureIdentity {
    identifier: String,
    django_id: u64,
    identity_traits: Vec<DocumentTrait>,
}

#[derive(Deserialize)]
struct FixtureResponse {
    flags: Vec<FixtureFlag>,
}

#[derive(Deserialize, Debug, PartialEq)]
struct FixtureFlag {
    feature: FixtureFeature,
    enabled: bool,
    feature_state_value: Value,
}

#[derive(Deserialize, Debug, PartialEq)]
struct FixtureFeature {
    name: String,
}

fn v1_trials() -> Vec<Trial> {
    let path = data_dir().join("v1/environment_n9fbf9h3v4fFgH3U3ngWhb.json");
    let text = std::fs::read_to_string(path).expect("vendored v1 fixture");
    let fixture: Fixture = serde_json::from_str(&text).expect("v1 fixture parses");
    assert_eq!(fixture.identities_and_responses.len(), 101);
    let snapshot = std::sync::Arc::new(Snapshot::from_document(&fixture.environment));
    fixture
        .identities_and_responses
        .into_iter()
        .enumerate()
        .map(|(i, case)| {
            let snapshot = snapshot.clone();
            let name = format!("v1::{i:03}_{}", case.identity.identifier);
            Trial::test(name, move || run_v1_case(&snapshot, case))
        })
        .collect()
}

/// Evaluates with the Django id as identity key, sorts by feature name, and compares `enabled` and the
/// value strictly (type included).
fn run_v1_case(snapshot: &Snapshot, case: IdentityCase) -> Result<(), Failed> {
    let key = case.identity.django_id.to_string();
    let traits: Vec<(&str, &Value)> = case
        .identity
        .identity_traits
        .iter()
        .map(|t| (t.trait_key.as_str(), &t.trait_value))
        .collect();
    let identity = Identity::new(&case.identity.identifier)
        .with_key(&key)
        .with_traits(&traits);
    let evaluation = snapshot.evaluate(Some(&identity));
    let mut actual: Vec<(String, bool, Value)> = evaluation
        .flags()
        .iter()
        .map(|f| (f.name.to_owned(), f.enabled, f.value.clone()))
        .collect();
    actual.sort_by(|a, b| a.0.cmp(&b.0));
    let expected: Vec<(String, bool, Value)> = case
        .response
        .flags
        .into_iter()
        .map(|f| (f.feature.name, f.enabled, f.feature_state_value))
        .collect();
    if actual != expected {
        return Err(format!("flags differ\nexpected: {expected:?}\nactual:   {actual:?}").into());
    }
    Ok(())
}
