//! Admin commands: everything the admin API manages, over HTTP. Objects may be named by id or by
//! name (projects, organisations, features, segments) or by key (environments) or identifier
//! (identities); names are resolved through the API.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::client::{CliError, CliResult, Client};
use crate::output::{Format, cell, pointer, print, table};

/// Connection and output options shared by every admin command.
#[derive(Debug, Clone, Args)]
pub(crate) struct Connection {
    /// URL of the Bullet Train server.
    #[arg(
        long,
        env = "BULLET_TRAIN_URL",
        default_value = "http://127.0.0.1:8000",
        global = true
    )]
    pub(crate) url: String,
    /// Admin token, or an organisation API key (`<prefix>.<secret>`); prefix it with `Token ` or
    /// `Api-Key ` to choose the scheme (an admin token containing a dot needs `Token `).
    #[arg(
        long,
        env = "BULLET_TRAIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub(crate) token: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
    pub(crate) format: Format,
    /// Print only the id (or key) of what a create command made.
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// Organisations.
    #[command(subcommand)]
    Organisations(OrganisationCommand),
    /// Organisation API keys (`Authorization: Api-Key`).
    #[command(subcommand, name = "api-keys")]
    ApiKeys(ApiKeyCommand),
    /// Projects.
    #[command(subcommand)]
    Projects(ProjectCommand),
    /// Environments.
    #[command(subcommand)]
    Environments(EnvironmentCommand),
    /// Server-side SDK keys of an environment.
    #[command(subcommand)]
    Keys(KeyCommand),
    /// Features of a project.
    #[command(subcommand)]
    Features(FeatureCommand),
    /// Flags of an environment: toggle, set values, split between variants.
    #[command(subcommand)]
    Flags(FlagCommand),
    /// Segments of a project.
    #[command(subcommand)]
    Segments(SegmentCommand),
    /// Segment overrides of a feature in an environment.
    #[command(subcommand)]
    Overrides(OverrideCommand),
    /// Identities of an environment.
    #[command(subcommand)]
    Identities(IdentityCommand),
    /// Traits of an identity.
    #[command(subcommand)]
    Traits(TraitCommand),
    /// Identity overrides.
    #[command(subcommand, name = "identity-overrides")]
    IdentityOverrides(IdentityOverrideCommand),
    /// Environment documents (Flagsmith format): export and import.
    #[command(subcommand)]
    Documents(DocumentCommand),
    /// The audit log, newest first.
    Audit(AuditArgs),
    /// Evaluates the flags of an identity with given traits, with the reason for each.
    Eval(EvalArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum OrganisationCommand {
    /// Lists organisations.
    List,
    /// Creates an organisation.
    Create { name: String },
    /// Deletes an organisation with everything in it.
    Delete { organisation: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ApiKeyCommand {
    /// Lists the organisation's API keys.
    List {
        #[arg(long)]
        organisation: String,
    },
    /// Creates an API key (printed once).
    Create {
        name: String,
        #[arg(long)]
        organisation: String,
        /// The key may only read.
        #[arg(long)]
        read_only: bool,
    },
    /// Revokes an API key by its prefix.
    Revoke {
        prefix: String,
        #[arg(long)]
        organisation: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProjectCommand {
    /// Lists projects.
    List {
        #[arg(long)]
        organisation: Option<String>,
    },
    /// Creates a project.
    Create {
        name: String,
        #[arg(long)]
        organisation: String,
    },
    /// Deletes a project with its features, segments and environments.
    Delete { project: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum EnvironmentCommand {
    /// Lists a project's environments.
    List {
        #[arg(long)]
        project: String,
    },
    /// Creates an environment (its client key is generated).
    Create {
        name: String,
        #[arg(long)]
        project: String,
    },
    /// Copies an environment's flags and segment overrides into a new one.
    Clone { environment: String, name: String },
    /// Changes an environment's settings.
    Set {
        environment: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        allow_client_traits: Option<bool>,
        #[arg(long)]
        hide_disabled_flags: Option<bool>,
        #[arg(long)]
        hide_sensitive_data: Option<bool>,
    },
    /// Deletes an environment.
    Delete { environment: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Lists an environment's server-side keys.
    List {
        #[arg(long)]
        environment: String,
    },
    /// Creates a server-side key (printed once).
    Create {
        name: String,
        #[arg(long)]
        environment: String,
    },
    /// Revokes a server-side key.
    Revoke {
        id: i64,
        #[arg(long)]
        environment: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum FeatureCommand {
    /// Lists a project's features.
    List {
        #[arg(long)]
        project: String,
        #[arg(long)]
        search: Option<String>,
    },
    /// Creates a feature; every environment gets it with `--enabled` and `--value`.
    Create {
        name: String,
        #[arg(long)]
        project: String,
        /// Initial value (text; numbers and true/false are typed by the server).
        #[arg(long, allow_negative_numbers = true)]
        value: Option<String>,
        /// Start enabled.
        #[arg(long)]
        enabled: bool,
        #[arg(long)]
        description: Option<String>,
        /// Hidden from client keys.
        #[arg(long)]
        server_key_only: bool,
        /// A multivariate option, `VALUE[:PERCENT[:KEY]]` (repeatable).
        #[arg(long = "option")]
        options: Vec<String>,
    },
    /// Renames a feature or changes its description or visibility.
    Update {
        feature: String,
        #[arg(long)]
        project: String,
        /// The new name.
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Hidden from client keys (`true`) or not (`false`).
        #[arg(long)]
        server_key_only: Option<bool>,
    },
    /// Adds a multivariate option, `VALUE[:PERCENT[:KEY]]` (the default allocation in every
    /// environment).
    AddOption {
        feature: String,
        option: String,
        #[arg(long)]
        project: String,
    },
    /// Removes a multivariate option, by value or key.
    RemoveOption {
        feature: String,
        option: String,
        #[arg(long)]
        project: String,
    },
    /// Deletes a feature.
    Delete {
        feature: String,
        #[arg(long)]
        project: String,
    },
}

/// How to read a value given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ValueKind {
    /// `true`/`false` are booleans, integers are integers, `null` is null, the rest is text.
    Auto,
    String,
    Integer,
    Boolean,
}

#[derive(Debug, Subcommand)]
pub(crate) enum FlagCommand {
    /// Lists the flags (environment defaults) of an environment.
    List {
        #[arg(long)]
        environment: String,
    },
    /// Turns a flag on in an environment.
    Enable {
        feature: String,
        #[arg(long)]
        environment: String,
    },
    /// Turns a flag off in an environment.
    Disable {
        feature: String,
        #[arg(long)]
        environment: String,
    },
    /// Sets a flag's value in an environment.
    Set {
        feature: String,
        #[arg(allow_negative_numbers = true)]
        value: String,
        #[arg(long)]
        environment: String,
        #[arg(long = "type", value_enum, default_value_t = ValueKind::Auto)]
        kind: ValueKind,
    },
    /// Sets the multivariate split in an environment: `OPTION=PERCENT` by option value or key.
    Split {
        feature: String,
        #[arg(long)]
        environment: String,
        allocations: Vec<String>,
    },
}

/// The quantifier of a segment's top-level rule given with `--rule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Match {
    All,
    Any,
    None,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SegmentCommand {
    /// Lists a project's segments.
    List {
        #[arg(long)]
        project: String,
    },
    /// Shows a segment's rules.
    Show {
        segment: String,
        #[arg(long)]
        project: String,
    },
    /// Creates a segment from `--rule` conditions or a `--rules-file` (Flagsmith rule JSON).
    Create {
        name: String,
        #[arg(long)]
        project: String,
        /// `PROPERTY OPERATOR VALUE`, `PROPERTY IS_SET`, or `PERCENTAGE_SPLIT PERCENT` (repeatable).
        #[arg(long = "rule")]
        rules: Vec<String>,
        /// How the `--rule` conditions combine.
        #[arg(long = "match", value_enum, default_value_t = Match::All, requires = "rules")]
        matching: Match,
        /// A JSON file of Flagsmith rules, instead of `--rule` conditions.
        #[arg(long, conflicts_with_all = ["rules", "matching"])]
        rules_file: Option<PathBuf>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Renames a segment, changes its description, or replaces its rules (`--rule` conditions or a
    /// `--rules-file`).
    Update {
        segment: String,
        #[arg(long)]
        project: String,
        /// The new name.
        #[arg(long)]
        name: Option<String>,
        /// `PROPERTY OPERATOR VALUE`, `PROPERTY IS_SET`, or `PERCENTAGE_SPLIT PERCENT` (repeatable).
        #[arg(long = "rule")]
        rules: Vec<String>,
        /// How the `--rule` conditions combine.
        #[arg(long = "match", value_enum, default_value_t = Match::All, requires = "rules")]
        matching: Match,
        /// A JSON file of Flagsmith rules, instead of `--rule` conditions.
        #[arg(long, conflicts_with_all = ["rules", "matching"])]
        rules_file: Option<PathBuf>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Deletes a segment (and its overrides).
    Delete {
        segment: String,
        #[arg(long)]
        project: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum OverrideCommand {
    /// Lists a feature's segment overrides in an environment, by priority.
    List {
        #[arg(long)]
        environment: String,
        #[arg(long)]
        feature: String,
    },
    /// Overrides a feature for a segment (`--priority 0` puts it first).
    Create {
        #[arg(long)]
        environment: String,
        #[arg(long)]
        feature: String,
        #[arg(long)]
        segment: String,
        #[arg(long)]
        priority: Option<i64>,
        #[arg(long, allow_negative_numbers = true)]
        value: Option<String>,
        #[arg(long = "type", value_enum, default_value_t = ValueKind::Auto)]
        kind: ValueKind,
        /// Enable the flag for the segment (otherwise it is disabled).
        #[arg(long)]
        enabled: bool,
        /// The segment's multivariate split, `OPTION=PERCENT` by option value or key (repeatable).
        #[arg(long = "split")]
        allocations: Vec<String>,
    },
    /// Removes a segment override.
    Delete {
        #[arg(long)]
        environment: String,
        #[arg(long)]
        feature: String,
        #[arg(long)]
        segment: String,
    },
    /// Orders a feature's segment overrides: the segments given, strongest first.
    Reorder {
        #[arg(long)]
        environment: String,
        #[arg(long)]
        feature: String,
        segments: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum IdentityCommand {
    /// Lists identities (`--search` matches the start of identifiers).
    List {
        #[arg(long)]
        environment: String,
        #[arg(long)]
        search: Option<String>,
    },
    /// Creates an identity.
    Create {
        identifier: String,
        #[arg(long)]
        environment: String,
    },
    /// Deletes an identity.
    Delete {
        identifier: String,
        #[arg(long)]
        environment: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TraitCommand {
    /// Lists an identity's traits.
    List {
        #[arg(long)]
        environment: String,
        #[arg(long)]
        identity: String,
    },
    /// Sets a trait.
    Set {
        key: String,
        #[arg(allow_negative_numbers = true)]
        value: String,
        #[arg(long)]
        environment: String,
        #[arg(long)]
        identity: String,
        #[arg(long = "type", value_enum, default_value_t = ValueKind::Auto)]
        kind: ValueKind,
    },
    /// Deletes a trait.
    Delete {
        key: String,
        #[arg(long)]
        environment: String,
        #[arg(long)]
        identity: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum IdentityOverrideCommand {
    /// Lists an identity's overrides.
    List {
        #[arg(long)]
        environment: String,
        #[arg(long)]
        identity: String,
    },
    /// Overrides a feature for an identity.
    Set {
        #[arg(long)]
        environment: String,
        #[arg(long)]
        identity: String,
        #[arg(long)]
        feature: String,
        #[arg(long, allow_negative_numbers = true)]
        value: Option<String>,
        #[arg(long = "type", value_enum, default_value_t = ValueKind::Auto)]
        kind: ValueKind,
        #[arg(long)]
        enabled: bool,
    },
    /// Removes an identity override.
    Delete {
        #[arg(long)]
        environment: String,
        #[arg(long)]
        identity: String,
        #[arg(long)]
        feature: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DocumentCommand {
    /// Writes an environment's document (to `--output`, or standard output).
    Export {
        #[arg(long)]
        environment: String,
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Imports a document, creating or replacing the environment of its `api_key`.
    Import { file: PathBuf },
}

#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    #[arg(long)]
    project: Option<String>,
    #[arg(long)]
    environment: Option<String>,
    #[arg(long)]
    search: Option<String>,
    /// Most entries to show.
    #[arg(long, default_value_t = 50)]
    limit: u64,
}

#[derive(Debug, Args)]
pub(crate) struct EvalArgs {
    #[arg(long)]
    environment: String,
    #[arg(long)]
    identity: String,
    /// A trait, `KEY=VALUE` (repeatable; values typed as with `--type auto`).
    #[arg(long = "trait")]
    traits: Vec<String>,
}

/// A value from the command line.
pub(crate) fn parse_value(text: &str, kind: ValueKind) -> CliResult<Value> {
    match kind {
        ValueKind::String => Ok(json!(text)),
        ValueKind::Integer => text
            .parse::<i64>()
            .map(|i| json!(i))
            .map_err(|_| CliError::Usage(format!("{text:?} is not an integer"))),
        ValueKind::Boolean => match text {
            "true" | "True" => Ok(json!(true)),
            "false" | "False" => Ok(json!(false)),
            _ => Err(CliError::Usage(format!("{text:?} is not true or false"))),
        },
        ValueKind::Auto => Ok(match text {
            "true" => json!(true),
            "false" => json!(false),
            "null" => Value::Null,
            _ => match text.parse::<i64>() {
                Ok(i) => json!(i),
                Err(_) => json!(text),
            },
        }),
    }
}

/// A value as Flagsmith's typed form.
fn typed(value: &Value) -> Value {
    match value {
        Value::Bool(b) => json!({"type": "bool", "boolean_value": b}),
        Value::Number(n) => json!({"type": "int", "integer_value": n}),
        Value::Null => json!({"type": "unicode", "string_value": null}),
        other => json!({"type": "unicode", "string_value": cell(other)}),
    }
}

/// The `name` and `description` fields of a partial update, those given.
fn renamed(name: Option<String>, description: Option<String>) -> serde_json::Map<String, Value> {
    let mut fields = serde_json::Map::new();
    if let Some(name) = name {
        fields.insert("name".into(), json!(name));
    }
    if let Some(description) = description {
        fields.insert("description".into(), json!(description));
    }
    fields
}

/// Columns of a multivariate option.
const OPTION_COLUMNS: [(&str, &str); 4] = [
    ("id", "id"),
    ("type", "type"),
    ("key", "key"),
    ("allocation", "default_percentage_allocation"),
];

/// A multivariate option's request body from `VALUE[:PERCENT[:KEY]]`.
fn option_body(option: &str) -> CliResult<Value> {
    let mut parts = option.splitn(3, ':');
    let value = parse_value(parts.next().unwrap_or(""), ValueKind::Auto)?;
    let percent = match parts.next() {
        Some(p) => p
            .parse::<f64>()
            .map_err(|_| CliError::Usage(format!("bad percentage in option {option:?}")))?,
        None => 0.0,
    };
    let mut body = typed(&value);
    body["default_percentage_allocation"] = json!(percent);
    if let Some(key) = parts.next() {
        body["key"] = json!(key);
    }
    Ok(body)
}

/// The option of `options` with key or value `name`.
fn find_option<'a>(options: &'a [Value], name: &str) -> Option<&'a Value> {
    options.iter().find(|o| {
        o["key"].as_str() == Some(name)
            || cell(&o["string_value"]) == name
            || cell(&o["integer_value"]) == name
            || cell(&o["boolean_value"]) == name
    })
}

/// Multivariate allocations of `feature` from `OPTION=PERCENT` arguments.
fn split(feature: &Value, allocations: &[String]) -> CliResult<Vec<Value>> {
    let options = feature["multivariate_options"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    allocations
        .iter()
        .map(|allocation| {
            let (name, percent) = allocation.rsplit_once('=').ok_or_else(|| {
                CliError::Usage(format!("use OPTION=PERCENT, not {allocation:?}"))
            })?;
            let percent: f64 = percent
                .parse()
                .map_err(|_| CliError::Usage(format!("bad percentage in {allocation:?}")))?;
            let option = find_option(&options, name).ok_or_else(|| {
                CliError::Usage(format!("no option {name:?} of {}", cell(&feature["name"])))
            })?;
            Ok(json!({"multivariate_feature_option": option["id"], "percentage_allocation": percent}))
        })
        .collect()
}

/// A segment's rules from `--rule` conditions (combined by `matching`) or a `--rules-file`;
/// `None` when neither is given.
fn segment_rules(
    rules: &[String],
    matching: Match,
    rules_file: Option<&std::path::Path>,
) -> CliResult<Option<Value>> {
    if let Some(path) = rules_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
        let rules = serde_json::from_str::<Value>(&text)
            .map_err(|e| CliError::Usage(format!("{} is not JSON: {e}", path.display())))?;
        return Ok(Some(rules));
    }
    if rules.is_empty() {
        return Ok(None);
    }
    let conditions = rules
        .iter()
        .map(|r| parse_condition(r))
        .collect::<CliResult<Vec<_>>>()?;
    let kind = match matching {
        Match::All => "ALL",
        Match::Any => "ANY",
        Match::None => "NONE",
    };
    Ok(Some(
        json!([{"type": kind, "rules": [], "conditions": conditions}]),
    ))
}

/// Parses one `--rule`.
fn parse_condition(text: &str) -> CliResult<Value> {
    let parts: Vec<&str> = text
        .splitn(3, char::is_whitespace)
        .filter(|p| !p.is_empty())
        .collect();
    match parts.as_slice() {
        ["PERCENTAGE_SPLIT", percent] => {
            Ok(json!({"operator": "PERCENTAGE_SPLIT", "property": "", "value": percent}))
        }
        [property, operator @ ("IS_SET" | "IS_NOT_SET")] => {
            Ok(json!({"operator": operator, "property": property, "value": null}))
        }
        [property, operator, value] => {
            Ok(json!({"operator": operator, "property": property, "value": value.trim()}))
        }
        _ => Err(CliError::Usage(format!(
            "cannot read the rule {text:?}: use \"PROPERTY OPERATOR VALUE\", \"PROPERTY IS_SET\" or \"PERCENTAGE_SPLIT PERCENT\""
        ))),
    }
}

/// Runs an admin command.
pub(crate) async fn run(command: AdminCommand, connection: &Connection) -> CliResult<()> {
    let token = connection.token.as_deref().ok_or_else(|| {
        CliError::Usage("an admin token is needed: --token or BULLET_TRAIN_TOKEN".into())
    })?;
    let client = Client::new(&connection.url, token)?;
    let cx = Context {
        client,
        format: connection.format,
        quiet: connection.quiet,
    };
    match command {
        AdminCommand::Organisations(c) => cx.organisations(c).await,
        AdminCommand::ApiKeys(c) => cx.api_keys(c).await,
        AdminCommand::Projects(c) => cx.projects(c).await,
        AdminCommand::Environments(c) => cx.environments(c).await,
        AdminCommand::Keys(c) => cx.keys(c).await,
        AdminCommand::Features(c) => cx.features(c).await,
        AdminCommand::Flags(c) => cx.flags(c).await,
        AdminCommand::Segments(c) => cx.segments(c).await,
        AdminCommand::Overrides(c) => cx.overrides(c).await,
        AdminCommand::Identities(c) => cx.identities(c).await,
        AdminCommand::Traits(c) => cx.traits(c).await,
        AdminCommand::IdentityOverrides(c) => cx.identity_overrides(c).await,
        AdminCommand::Documents(c) => cx.documents(c).await,
        AdminCommand::Audit(a) => cx.audit(a).await,
        AdminCommand::Eval(a) => cx.eval(a).await,
    }
}

struct Context {
    client: Client,
    format: Format,
    quiet: bool,
}

impl Context {
    /// Prints what a create command made: its id (or `id_field`) with `--quiet`, otherwise a table.
    fn created(&self, value: &Value, id_field: &str, columns: &[(&str, &str)]) {
        if self.quiet {
            outln!("{}", cell(&pointer(value, id_field)));
        } else {
            print(self.format, value, columns);
        }
    }

    fn done(&self, message: &str) {
        if !self.quiet && self.format == Format::Table {
            outln!("{message}");
        }
    }

    /// Finds an item by id (digits) or by a field's exact value.
    fn find<'a>(
        items: &'a [Value],
        reference: &str,
        field: &str,
        what: &str,
    ) -> CliResult<&'a Value> {
        let name = |item: &Value| item.get(field).and_then(Value::as_str).map(str::to_owned);
        let exact = items.iter().find(|item| {
            name(item).as_deref() == Some(reference)
                || item.get("id").map(cell).as_deref() == Some(reference)
        });
        // Names differing only in case are one name to the server (features): such a match
        // counts when it is the only one.
        let folded = || {
            let mut matches = items.iter().filter(|item| {
                name(item).is_some_and(|n| n.to_lowercase() == reference.to_lowercase())
            });
            matches.next().filter(|_| matches.next().is_none())
        };
        exact
            .or_else(folded)
            .ok_or_else(|| CliError::Usage(format!("no {what} named {reference:?}")))
    }

    async fn organisation_id(&self, reference: &str) -> CliResult<i64> {
        let all = self.client.all("/api/v1/organisations/").await?;
        Ok(Self::find(&all, reference, "name", "organisation")?["id"]
            .as_i64()
            .unwrap_or_default())
    }

    async fn project_id(&self, reference: &str) -> CliResult<i64> {
        let all = self.client.all("/api/v1/projects/").await?;
        Ok(Self::find(&all, reference, "name", "project")?["id"]
            .as_i64()
            .unwrap_or_default())
    }

    async fn environment(&self, key: &str) -> CliResult<Value> {
        self.client
            .get(&format!("/api/v1/environments/{key}/"))
            .await
    }

    async fn feature(&self, project: i64, reference: &str) -> CliResult<Value> {
        let all = self
            .client
            .all(&format!("/api/v1/projects/{project}/features/"))
            .await?;
        Self::find(&all, reference, "name", "feature").cloned()
    }

    async fn segment(&self, project: i64, reference: &str) -> CliResult<Value> {
        let all = self
            .client
            .all(&format!("/api/v1/projects/{project}/segments/"))
            .await?;
        Self::find(&all, reference, "name", "segment").cloned()
    }

    async fn identity_id(&self, environment: &str, identifier: &str) -> CliResult<i64> {
        let found = self
            .client
            .get(&format!(
                "/api/v1/environments/{environment}/identities/?q=%22{}%22",
                urlencode(identifier)
            ))
            .await?;
        found["results"][0]["id"]
            .as_i64()
            .ok_or_else(|| CliError::Usage(format!("no identity {identifier:?}")))
    }

    /// The environment-default state of a feature in an environment, and the environment.
    async fn default_state(&self, environment: &str, feature: &str) -> CliResult<(Value, Value)> {
        let env = self.environment(environment).await?;
        let project = env["project"].as_i64().unwrap_or_default();
        let feature = self.feature(project, feature).await?;
        let states = self
            .client
            .get(&format!(
                "/api/v1/environments/{environment}/featurestates/?feature={}",
                feature["id"]
            ))
            .await?;
        let state = states["results"][0].clone();
        if state.is_null() {
            return Err(CliError::Usage("the feature has no state here".into()));
        }
        Ok((state, feature))
    }

    async fn organisations(&self, command: OrganisationCommand) -> CliResult<()> {
        let columns = [
            ("id", "id"),
            ("name", "name"),
            ("persist traits", "persist_trait_data"),
        ];
        match command {
            OrganisationCommand::List => {
                let all = self.client.all("/api/v1/organisations/").await?;
                print(self.format, &Value::Array(all), &columns);
            }
            OrganisationCommand::Create { name } => {
                let created = self
                    .client
                    .post("/api/v1/organisations/", &json!({"name": name}))
                    .await?;
                self.created(&created, "id", &columns);
            }
            OrganisationCommand::Delete { organisation } => {
                let id = self.organisation_id(&organisation).await?;
                self.client
                    .delete(&format!("/api/v1/organisations/{id}/"))
                    .await?;
                self.done("deleted");
            }
        }
        Ok(())
    }

    async fn api_keys(&self, command: ApiKeyCommand) -> CliResult<()> {
        let columns = [
            ("prefix", "prefix"),
            ("name", "name"),
            ("admin", "is_admin"),
            ("created", "created"),
        ];
        match command {
            ApiKeyCommand::List { organisation } => {
                let id = self.organisation_id(&organisation).await?;
                let all = self
                    .client
                    .all(&format!("/api/v1/organisations/{id}/master-api-keys/"))
                    .await?;
                print(self.format, &Value::Array(all), &columns);
            }
            ApiKeyCommand::Create {
                name,
                organisation,
                read_only,
            } => {
                let id = self.organisation_id(&organisation).await?;
                let created = self
                    .client
                    .post(
                        &format!("/api/v1/organisations/{id}/master-api-keys/"),
                        &json!({"name": name, "is_admin": !read_only}),
                    )
                    .await?;
                self.created(
                    &created,
                    "key",
                    &[("key", "key"), ("prefix", "prefix"), ("name", "name")],
                );
            }
            ApiKeyCommand::Revoke {
                prefix,
                organisation,
            } => {
                let id = self.organisation_id(&organisation).await?;
                self.client
                    .delete(&format!(
                        "/api/v1/organisations/{id}/master-api-keys/{prefix}/"
                    ))
                    .await?;
                self.done("revoked");
            }
        }
        Ok(())
    }

    async fn projects(&self, command: ProjectCommand) -> CliResult<()> {
        let columns = [
            ("id", "id"),
            ("name", "name"),
            ("organisation", "organisation"),
        ];
        match command {
            ProjectCommand::List { organisation } => {
                let path = match organisation {
                    Some(o) => format!(
                        "/api/v1/projects/?organisation={}",
                        self.organisation_id(&o).await?
                    ),
                    None => "/api/v1/projects/".into(),
                };
                let all = self.client.all(&path).await?;
                print(self.format, &Value::Array(all), &columns);
            }
            ProjectCommand::Create { name, organisation } => {
                let organisation = self.organisation_id(&organisation).await?;
                let created = self
                    .client
                    .post(
                        "/api/v1/projects/",
                        &json!({"name": name, "organisation": organisation}),
                    )
                    .await?;
                self.created(&created, "id", &columns);
            }
            ProjectCommand::Delete { project } => {
                let id = self.project_id(&project).await?;
                self.client
                    .delete(&format!("/api/v1/projects/{id}/"))
                    .await?;
                self.done("deleted");
            }
        }
        Ok(())
    }

    async fn environments(&self, command: EnvironmentCommand) -> CliResult<()> {
        let columns = [
            ("name", "name"),
            ("key", "api_key"),
            ("id", "id"),
            ("project", "project"),
        ];
        match command {
            EnvironmentCommand::List { project } => {
                let id = self.project_id(&project).await?;
                let all = self
                    .client
                    .all(&format!("/api/v1/environments/?project={id}"))
                    .await?;
                print(self.format, &Value::Array(all), &columns);
            }
            EnvironmentCommand::Create { name, project } => {
                let project = self.project_id(&project).await?;
                let created = self
                    .client
                    .post(
                        "/api/v1/environments/",
                        &json!({"name": name, "project": project}),
                    )
                    .await?;
                self.created(&created, "api_key", &columns);
            }
            EnvironmentCommand::Clone { environment, name } => {
                let created = self
                    .client
                    .post(
                        &format!("/api/v1/environments/{environment}/clone/"),
                        &json!({"name": name}),
                    )
                    .await?;
                self.created(&created, "api_key", &columns);
            }
            EnvironmentCommand::Set {
                environment,
                name,
                allow_client_traits,
                hide_disabled_flags,
                hide_sensitive_data,
            } => {
                let mut body = serde_json::Map::new();
                if let Some(v) = name {
                    body.insert("name".into(), json!(v));
                }
                if let Some(v) = allow_client_traits {
                    body.insert("allow_client_traits".into(), json!(v));
                }
                if let Some(v) = hide_disabled_flags {
                    body.insert("hide_disabled_flags".into(), json!(v));
                }
                if let Some(v) = hide_sensitive_data {
                    body.insert("hide_sensitive_data".into(), json!(v));
                }
                if body.is_empty() {
                    return Err(CliError::Usage(
                        "give --name, --allow-client-traits, --hide-disabled-flags or \
                         --hide-sensitive-data"
                            .into(),
                    ));
                }
                let updated = self
                    .client
                    .patch(
                        &format!("/api/v1/environments/{environment}/"),
                        &Value::Object(body),
                    )
                    .await?;
                print(self.format, &updated, &columns);
            }
            EnvironmentCommand::Delete { environment } => {
                self.client
                    .delete(&format!("/api/v1/environments/{environment}/"))
                    .await?;
                self.done("deleted");
            }
        }
        Ok(())
    }

    async fn keys(&self, command: KeyCommand) -> CliResult<()> {
        let columns = [
            ("id", "id"),
            ("prefix", "prefix"),
            ("name", "name"),
            ("active", "active"),
        ];
        match command {
            KeyCommand::List { environment } => {
                let all = self
                    .client
                    .get(&format!("/api/v1/environments/{environment}/api-keys/"))
                    .await?;
                print(self.format, &all, &columns);
            }
            KeyCommand::Create { name, environment } => {
                let created = self
                    .client
                    .post(
                        &format!("/api/v1/environments/{environment}/api-keys/"),
                        &json!({"name": name}),
                    )
                    .await?;
                self.created(
                    &created,
                    "key",
                    &[("key", "key"), ("id", "id"), ("name", "name")],
                );
            }
            KeyCommand::Revoke { id, environment } => {
                self.client
                    .delete(&format!(
                        "/api/v1/environments/{environment}/api-keys/{id}/"
                    ))
                    .await?;
                self.done("revoked");
            }
        }
        Ok(())
    }

    /// PATCHes the fields given (a usage error when there are none) and shows the result.
    async fn patch_fields(
        &self,
        path: &str,
        fields: serde_json::Map<String, Value>,
        usage: &str,
        columns: &[(&str, &str)],
    ) -> CliResult<()> {
        if fields.is_empty() {
            return Err(CliError::Usage(usage.into()));
        }
        let updated = self.client.patch(path, &Value::Object(fields)).await?;
        self.created(&updated, "id", columns);
        Ok(())
    }

    async fn features(&self, command: FeatureCommand) -> CliResult<()> {
        let columns = [
            ("id", "id"),
            ("name", "name"),
            ("type", "type"),
            ("initial value", "initial_value"),
            ("enabled by default", "default_enabled"),
        ];
        match command {
            FeatureCommand::List { project, search } => {
                let id = self.project_id(&project).await?;
                let path = match search {
                    Some(s) => format!("/api/v1/projects/{id}/features/?search={}", urlencode(&s)),
                    None => format!("/api/v1/projects/{id}/features/"),
                };
                let all = self.client.all(&path).await?;
                print(self.format, &Value::Array(all), &columns);
            }
            FeatureCommand::Create {
                name,
                project,
                value,
                enabled,
                description,
                server_key_only,
                options,
            } => {
                let project = self.project_id(&project).await?;
                let parsed = options
                    .iter()
                    .map(|o| option_body(o))
                    .collect::<CliResult<Vec<_>>>()?;
                let body = json!({"name": name, "initial_value": value, "default_enabled": enabled,
                    "description": description, "is_server_key_only": server_key_only,
                    "multivariate_options": parsed});
                let created = self
                    .client
                    .post(&format!("/api/v1/projects/{project}/features/"), &body)
                    .await?;
                self.created(&created, "id", &columns);
            }
            FeatureCommand::Update {
                feature,
                project,
                name,
                description,
                server_key_only,
            } => {
                let project = self.project_id(&project).await?;
                let feature = self.feature(project, &feature).await?;
                let mut body = renamed(name, description);
                if let Some(hidden) = server_key_only {
                    body.insert("is_server_key_only".into(), json!(hidden));
                }
                self.patch_fields(
                    &format!("/api/v1/projects/{project}/features/{}/", feature["id"]),
                    body,
                    "give --name, --description or --server-key-only",
                    &columns,
                )
                .await?;
            }
            FeatureCommand::AddOption {
                feature,
                option,
                project,
            } => {
                let project = self.project_id(&project).await?;
                let feature = self.feature(project, &feature).await?;
                let created = self
                    .client
                    .post(
                        &format!(
                            "/api/v1/projects/{project}/features/{}/mv-options/",
                            feature["id"]
                        ),
                        &option_body(&option)?,
                    )
                    .await?;
                self.created(&created, "id", &OPTION_COLUMNS);
            }
            FeatureCommand::RemoveOption {
                feature,
                option,
                project,
            } => {
                let project = self.project_id(&project).await?;
                let feature = self.feature(project, &feature).await?;
                let options = feature["multivariate_options"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let found = find_option(&options, &option).ok_or_else(|| {
                    CliError::Usage(format!("no option {option:?} of {}", feature["name"]))
                })?;
                self.client
                    .delete(&format!(
                        "/api/v1/projects/{project}/features/{}/mv-options/{}/",
                        feature["id"], found["id"]
                    ))
                    .await?;
                self.done("removed");
            }
            FeatureCommand::Delete { feature, project } => {
                let project = self.project_id(&project).await?;
                let feature = self.feature(project, &feature).await?;
                self.client
                    .delete(&format!(
                        "/api/v1/projects/{project}/features/{}/",
                        feature["id"]
                    ))
                    .await?;
                self.done("deleted");
            }
        }
        Ok(())
    }

    async fn flags(&self, command: FlagCommand) -> CliResult<()> {
        let columns = [
            ("feature", "feature"),
            ("enabled", "enabled"),
            ("value", "feature_state_value"),
        ];
        let state_path = |environment: &str, state: &Value| {
            format!(
                "/api/v1/environments/{environment}/featurestates/{}/",
                state["id"]
            )
        };
        match command {
            FlagCommand::List { environment } => {
                let env = self.environment(&environment).await?;
                let project = env["project"].as_i64().unwrap_or_default();
                let features = self
                    .client
                    .all(&format!(
                        "/api/v1/projects/{project}/features/?environment={}",
                        env["id"]
                    ))
                    .await?;
                let rows: Vec<Value> = features
                    .iter()
                    .map(|f| json!({"feature": f["name"], "enabled": f["environment_feature_state"]["enabled"],
                        "feature_state_value": f["environment_feature_state"]["feature_state_value"],
                        "segment_overrides": f["num_segment_overrides"], "identity_overrides": f["num_identity_overrides"]}))
                    .collect();
                print(
                    self.format,
                    &Value::Array(rows),
                    &[
                        ("feature", "feature"),
                        ("enabled", "enabled"),
                        ("value", "feature_state_value"),
                        ("segment overrides", "segment_overrides"),
                        ("identity overrides", "identity_overrides"),
                    ],
                );
            }
            FlagCommand::Enable {
                feature,
                environment,
            } => {
                self.toggle(&environment, &feature, true).await?;
            }
            FlagCommand::Disable {
                feature,
                environment,
            } => {
                self.toggle(&environment, &feature, false).await?;
            }
            FlagCommand::Set {
                feature,
                value,
                environment,
                kind,
            } => {
                let (state, f) = self.default_state(&environment, &feature).await?;
                let value = parse_value(&value, kind)?;
                let updated = self
                    .client
                    .patch(
                        &state_path(&environment, &state),
                        &json!({"feature_state_value": value}),
                    )
                    .await?;
                let mut shown = updated.clone();
                shown["feature"] = f["name"].clone();
                print(self.format, &shown, &columns);
            }
            FlagCommand::Split {
                feature,
                environment,
                allocations,
            } => {
                let (state, f) = self.default_state(&environment, &feature).await?;
                let values = split(&f, &allocations)?;
                let updated = self
                    .client
                    .patch(
                        &state_path(&environment, &state),
                        &json!({"multivariate_feature_state_values": values}),
                    )
                    .await?;
                print(
                    self.format,
                    &updated["multivariate_feature_state_values"],
                    &[
                        ("option", "multivariate_feature_option"),
                        ("percent", "percentage_allocation"),
                    ],
                );
            }
        }
        Ok(())
    }

    async fn toggle(&self, environment: &str, feature: &str, enabled: bool) -> CliResult<()> {
        let (state, f) = self.default_state(environment, feature).await?;
        let mut updated = self
            .client
            .patch(
                &format!(
                    "/api/v1/environments/{environment}/featurestates/{}/",
                    state["id"]
                ),
                &json!({"enabled": enabled}),
            )
            .await?;
        updated["feature"] = f["name"].clone();
        print(
            self.format,
            &updated,
            &[
                ("feature", "feature"),
                ("enabled", "enabled"),
                ("value", "feature_state_value"),
            ],
        );
        Ok(())
    }

    async fn segments(&self, command: SegmentCommand) -> CliResult<()> {
        let columns = [
            ("id", "id"),
            ("name", "name"),
            ("description", "description"),
        ];
        match command {
            SegmentCommand::List { project } => {
                let id = self.project_id(&project).await?;
                let all = self
                    .client
                    .all(&format!("/api/v1/projects/{id}/segments/"))
                    .await?;
                print(self.format, &Value::Array(all), &columns);
            }
            SegmentCommand::Show { segment, project } => {
                let project = self.project_id(&project).await?;
                let found = self.segment(project, &segment).await?;
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&found).unwrap_or_default()
                );
            }
            SegmentCommand::Create {
                name,
                project,
                rules,
                matching,
                rules_file,
                description,
            } => {
                let project = self.project_id(&project).await?;
                let rules =
                    segment_rules(&rules, matching, rules_file.as_deref())?.ok_or_else(|| {
                        CliError::Usage("give --rule conditions or a --rules-file".into())
                    })?;
                let created = self
                    .client
                    .post(
                        &format!("/api/v1/projects/{project}/segments/"),
                        &json!({"name": name, "description": description, "rules": rules}),
                    )
                    .await?;
                self.created(&created, "id", &columns);
            }
            SegmentCommand::Update {
                segment,
                project,
                name,
                rules,
                matching,
                rules_file,
                description,
            } => {
                let project = self.project_id(&project).await?;
                let found = self.segment(project, &segment).await?;
                let mut body = renamed(name, description);
                if let Some(rules) = segment_rules(&rules, matching, rules_file.as_deref())? {
                    body.insert("rules".into(), rules);
                }
                self.patch_fields(
                    &format!("/api/v1/projects/{project}/segments/{}/", found["id"]),
                    body,
                    "give --name, --description, --rule conditions or a --rules-file",
                    &columns,
                )
                .await?;
            }
            SegmentCommand::Delete { segment, project } => {
                let project = self.project_id(&project).await?;
                let found = self.segment(project, &segment).await?;
                self.client
                    .delete(&format!(
                        "/api/v1/projects/{project}/segments/{}/",
                        found["id"]
                    ))
                    .await?;
                self.done("deleted");
            }
        }
        Ok(())
    }

    /// The feature, its project's segment named `segment` (when given), and the environment.
    async fn override_context(
        &self,
        environment: &str,
        feature: &str,
    ) -> CliResult<(Value, Value)> {
        let env = self.environment(environment).await?;
        let project = env["project"].as_i64().unwrap_or_default();
        let feature = self.feature(project, feature).await?;
        Ok((env, feature))
    }

    async fn overrides(&self, command: OverrideCommand) -> CliResult<()> {
        match command {
            OverrideCommand::List {
                environment,
                feature,
            } => {
                let (env, feature) = self.override_context(&environment, &feature).await?;
                let links = self
                    .client
                    .all(&format!(
                        "/api/v1/features/feature-segments/?environment={}&feature={}",
                        env["id"], feature["id"]
                    ))
                    .await?;
                let states = self
                    .client
                    .all(&format!(
                        "/api/v1/features/featurestates/?environment={}&feature={}",
                        env["id"], feature["id"]
                    ))
                    .await?;
                let rows: Vec<Value> = links
                    .iter()
                    .map(|l| {
                        let state = states.iter().find(|s| s["feature_segment"] == l["id"]);
                        json!({"priority": l["priority"], "segment": l["segment_name"],
                            "enabled": state.map(|s| s["enabled"].clone()), "value": state.map(|s| s["feature_state_value"].clone()),
                            "id": l["id"]})
                    })
                    .collect();
                print(
                    self.format,
                    &Value::Array(rows),
                    &[
                        ("priority", "priority"),
                        ("segment", "segment"),
                        ("enabled", "enabled"),
                        ("value", "value"),
                    ],
                );
            }
            OverrideCommand::Create {
                environment,
                feature,
                segment,
                priority,
                value,
                kind,
                enabled,
                allocations,
            } => {
                let (env, feature) = self.override_context(&environment, &feature).await?;
                let project = env["project"].as_i64().unwrap_or_default();
                let segment = self.segment(project, &segment).await?;
                let value = match value {
                    Some(v) => parse_value(&v, kind)?,
                    None => feature_initial(&feature),
                };
                let mut link = json!({"segment": segment["id"]});
                if let Some(p) = priority {
                    link["priority"] = json!(p);
                }
                let mut body = json!({"feature_segment": link, "enabled": enabled, "feature_state_value": typed(&value)});
                if !allocations.is_empty() {
                    body["multivariate_feature_state_values"] =
                        Value::Array(split(&feature, &allocations)?);
                }
                let created = self
                    .client
                    .post(
                        &format!("/api/v1/environments/{environment}/features/{}/create-segment-override/", feature["id"]),
                        &body,
                    )
                    .await?;
                let shown = json!({"segment": segment["name"], "priority": created["feature_segment"]["priority"],
                    "enabled": created["enabled"], "value": value, "id": created["feature_segment"]["id"]});
                self.created(
                    &shown,
                    "id",
                    &[
                        ("segment", "segment"),
                        ("priority", "priority"),
                        ("enabled", "enabled"),
                        ("value", "value"),
                    ],
                );
            }
            OverrideCommand::Delete {
                environment,
                feature,
                segment,
            } => {
                let (env, feature) = self.override_context(&environment, &feature).await?;
                let project = env["project"].as_i64().unwrap_or_default();
                let segment = self.segment(project, &segment).await?;
                let links = self
                    .client
                    .all(&format!(
                        "/api/v1/features/feature-segments/?environment={}&feature={}",
                        env["id"], feature["id"]
                    ))
                    .await?;
                let link = links
                    .iter()
                    .find(|l| l["segment"] == segment["id"])
                    .ok_or_else(|| CliError::Usage("no override of that segment".into()))?;
                self.client
                    .delete(&format!(
                        "/api/v1/features/feature-segments/{}/",
                        link["id"]
                    ))
                    .await?;
                self.done("deleted");
            }
            OverrideCommand::Reorder {
                environment,
                feature,
                segments,
            } => {
                let (env, feature) = self.override_context(&environment, &feature).await?;
                let project = env["project"].as_i64().unwrap_or_default();
                let links = self
                    .client
                    .all(&format!(
                        "/api/v1/features/feature-segments/?environment={}&feature={}",
                        env["id"], feature["id"]
                    ))
                    .await?;
                let mut order = Vec::new();
                for (priority, name) in segments.iter().enumerate() {
                    let segment = self.segment(project, name).await?;
                    let link = links
                        .iter()
                        .find(|l| l["segment"] == segment["id"])
                        .ok_or_else(|| {
                            CliError::Usage(format!("{name} does not override this feature"))
                        })?;
                    order.push(json!({"id": link["id"], "priority": priority}));
                }
                let updated = self
                    .client
                    .post(
                        "/api/v1/features/feature-segments/update-priorities/",
                        &Value::Array(order),
                    )
                    .await?;
                print(
                    self.format,
                    &updated,
                    &[("priority", "priority"), ("segment", "segment_name")],
                );
            }
        }
        Ok(())
    }

    async fn identities(&self, command: IdentityCommand) -> CliResult<()> {
        let columns = [
            ("id", "id"),
            ("identifier", "identifier"),
            ("created", "created_date"),
        ];
        match command {
            IdentityCommand::List {
                environment,
                search,
            } => {
                let path = match search {
                    Some(s) => format!(
                        "/api/v1/environments/{environment}/identities/?q={}",
                        urlencode(&s)
                    ),
                    None => format!("/api/v1/environments/{environment}/identities/"),
                };
                let all = self.client.all(&path).await?;
                print(self.format, &Value::Array(all), &columns);
            }
            IdentityCommand::Create {
                identifier,
                environment,
            } => {
                let created = self
                    .client
                    .post(
                        &format!("/api/v1/environments/{environment}/identities/"),
                        &json!({"identifier": identifier}),
                    )
                    .await?;
                self.created(&created, "id", &columns);
            }
            IdentityCommand::Delete {
                identifier,
                environment,
            } => {
                let id = self.identity_id(&environment, &identifier).await?;
                self.client
                    .delete(&format!(
                        "/api/v1/environments/{environment}/identities/{id}/"
                    ))
                    .await?;
                self.done("deleted");
            }
        }
        Ok(())
    }

    async fn traits(&self, command: TraitCommand) -> CliResult<()> {
        match command {
            TraitCommand::List {
                environment,
                identity,
            } => {
                let id = self.identity_id(&environment, &identity).await?;
                let all = self
                    .client
                    .all(&format!(
                        "/api/v1/environments/{environment}/identities/{id}/traits/"
                    ))
                    .await?;
                let rows: Vec<Value> = all.iter().map(trait_row).collect();
                print(
                    self.format,
                    &Value::Array(rows),
                    &[
                        ("key", "trait_key"),
                        ("type", "value_type"),
                        ("value", "value"),
                    ],
                );
            }
            TraitCommand::Set {
                key,
                value,
                environment,
                identity,
                kind,
            } => {
                let id = self.identity_id(&environment, &identity).await?;
                let value = parse_value(&value, kind)?;
                let body = match &value {
                    Value::Bool(b) => {
                        json!({"trait_key": key, "value_type": "bool", "boolean_value": b})
                    }
                    Value::Number(n) => {
                        json!({"trait_key": key, "value_type": "int", "integer_value": n})
                    }
                    other => {
                        json!({"trait_key": key, "value_type": "unicode", "string_value": cell(other)})
                    }
                };
                let created = self
                    .client
                    .post(
                        &format!("/api/v1/environments/{environment}/identities/{id}/traits/"),
                        &body,
                    )
                    .await?;
                print(
                    self.format,
                    &trait_row(&created),
                    &[
                        ("key", "trait_key"),
                        ("type", "value_type"),
                        ("value", "value"),
                    ],
                );
            }
            TraitCommand::Delete {
                key,
                environment,
                identity,
            } => {
                let id = self.identity_id(&environment, &identity).await?;
                let all = self
                    .client
                    .all(&format!(
                        "/api/v1/environments/{environment}/identities/{id}/traits/"
                    ))
                    .await?;
                let found = Self::find(&all, &key, "trait_key", "trait")?;
                self.client
                    .delete(&format!(
                        "/api/v1/environments/{environment}/identities/{id}/traits/{}/",
                        found["id"]
                    ))
                    .await?;
                self.done("deleted");
            }
        }
        Ok(())
    }

    async fn identity_overrides(&self, command: IdentityOverrideCommand) -> CliResult<()> {
        let columns = [
            ("feature", "feature_name"),
            ("enabled", "enabled"),
            ("value", "feature_state_value"),
        ];
        match command {
            IdentityOverrideCommand::List {
                environment,
                identity,
            } => {
                let id = self.identity_id(&environment, &identity).await?;
                let env = self.environment(&environment).await?;
                let project = env["project"].as_i64().unwrap_or_default();
                let features = self
                    .client
                    .all(&format!("/api/v1/projects/{project}/features/"))
                    .await?;
                let all = self
                    .client
                    .all(&format!(
                        "/api/v1/environments/{environment}/identities/{id}/featurestates/"
                    ))
                    .await?;
                let rows: Vec<Value> = all
                    .iter()
                    .map(|s| {
                        let mut row = s.clone();
                        row["feature_name"] = features
                            .iter()
                            .find(|f| f["id"] == s["feature"])
                            .map(|f| f["name"].clone())
                            .unwrap_or(Value::Null);
                        row
                    })
                    .collect();
                print(self.format, &Value::Array(rows), &columns);
            }
            IdentityOverrideCommand::Set {
                environment,
                identity,
                feature,
                value,
                kind,
                enabled,
            } => {
                let id = self.identity_id(&environment, &identity).await?;
                let (_, feature) = self.override_context(&environment, &feature).await?;
                let value = match value {
                    Some(v) => parse_value(&v, kind)?,
                    None => feature_initial(&feature),
                };
                let base =
                    format!("/api/v1/environments/{environment}/identities/{id}/featurestates/");
                let existing = self.client.all(&base).await?;
                let body = json!({"feature": feature["id"], "enabled": enabled, "feature_state_value": value});
                let mut saved = match existing.iter().find(|s| s["feature"] == feature["id"]) {
                    Some(state) => {
                        self.client
                            .put(&format!("{base}{}/", state["id"]), &body)
                            .await?
                    }
                    None => self.client.post(&base, &body).await?,
                };
                saved["feature_name"] = feature["name"].clone();
                print(self.format, &saved, &columns);
            }
            IdentityOverrideCommand::Delete {
                environment,
                identity,
                feature,
            } => {
                let id = self.identity_id(&environment, &identity).await?;
                let (_, feature) = self.override_context(&environment, &feature).await?;
                let base =
                    format!("/api/v1/environments/{environment}/identities/{id}/featurestates/");
                let existing = self.client.all(&base).await?;
                let state = existing
                    .iter()
                    .find(|s| s["feature"] == feature["id"])
                    .ok_or_else(|| CliError::Usage("no override of that feature".into()))?;
                self.client
                    .delete(&format!("{base}{}/", state["id"]))
                    .await?;
                self.done("deleted");
            }
        }
        Ok(())
    }

    async fn documents(&self, command: DocumentCommand) -> CliResult<()> {
        match command {
            DocumentCommand::Export {
                environment,
                output,
            } => {
                let document = self
                    .client
                    .get(&format!("/api/v1/environments/{environment}/document/"))
                    .await?;
                let text = serde_json::to_string_pretty(&document).unwrap_or_default();
                match output {
                    Some(path) => {
                        std::fs::write(&path, text).map_err(|e| {
                            CliError::Usage(format!("cannot write {}: {e}", path.display()))
                        })?;
                        self.done(&format!("wrote {}", path.display()));
                    }
                    None => outln!("{text}"),
                }
            }
            DocumentCommand::Import { file } => {
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
                let document: Value = serde_json::from_str(&text)
                    .map_err(|e| CliError::Usage(format!("{} is not JSON: {e}", file.display())))?;
                let key = document["api_key"]
                    .as_str()
                    .ok_or_else(|| CliError::Usage("the document has no api_key".into()))?
                    .to_owned();
                let imported = self
                    .client
                    .put(&format!("/api/v1/environments/{key}/document/"), &document)
                    .await?;
                let summary = json!({"api_key": imported["api_key"], "name": imported["name"],
                    "features": imported["feature_states"].as_array().map_or(0, Vec::len),
                    "segments": imported["project"]["segments"].as_array().map_or(0, Vec::len)});
                self.created(
                    &summary,
                    "api_key",
                    &[
                        ("environment", "api_key"),
                        ("name", "name"),
                        ("features", "features"),
                        ("segments", "segments"),
                    ],
                );
            }
        }
        Ok(())
    }

    async fn audit(&self, args: AuditArgs) -> CliResult<()> {
        let mut query = vec![format!("page_size={}", args.limit.clamp(1, 999))];
        if let Some(project) = &args.project {
            query.push(format!("project={}", self.project_id(project).await?));
        }
        if let Some(environment) = &args.environment {
            query.push(format!(
                "environments={}",
                self.environment(environment).await?["id"]
            ));
        }
        if let Some(search) = &args.search {
            query.push(format!("search={}", urlencode(search)));
        }
        let page = self
            .client
            .get(&format!("/api/v1/audit/?{}", query.join("&")))
            .await?;
        print(
            self.format,
            &page["results"],
            &[
                ("when", "created_date"),
                ("who", "author.email"),
                ("what", "related_object_type"),
                ("log", "log"),
            ],
        );
        Ok(())
    }

    async fn eval(&self, args: EvalArgs) -> CliResult<()> {
        let mut traits = serde_json::Map::new();
        for item in &args.traits {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| CliError::Usage(format!("use KEY=VALUE, not {item:?}")))?;
            traits.insert(key.to_owned(), parse_value(value, ValueKind::Auto)?);
        }
        let result = self
            .client
            .post(
                &format!("/api/v1/environments/{}/evaluate/", args.environment),
                &json!({"identifier": args.identity, "traits": traits}),
            )
            .await?;
        match self.format {
            Format::Json => outln!(
                "{}",
                serde_json::to_string_pretty(&result).unwrap_or_default()
            ),
            Format::Table => {
                let rows: Vec<Vec<String>> = result["flags"]
                    .as_array()
                    .map(|flags| {
                        flags
                            .iter()
                            .map(|f| {
                                vec![
                                    cell(&f["feature"]),
                                    cell(&f["enabled"]),
                                    cell(&f["value"]),
                                    cell(&f["variant"]),
                                    cell(&f["reason"]),
                                ]
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                outln!(
                    "{}",
                    table(&["feature", "enabled", "value", "variant", "reason"], &rows)
                );
                let segments: Vec<String> = result["segments"]
                    .as_array()
                    .map(|s| s.iter().map(cell).collect())
                    .unwrap_or_default();
                outln!(
                    "\nsegments: {}",
                    if segments.is_empty() {
                        "(none)".into()
                    } else {
                        segments.join(", ")
                    }
                );
            }
        }
        Ok(())
    }
}

/// The initial value of a feature as a typed value (for overrides given no `--value`).
fn feature_initial(feature: &Value) -> Value {
    match feature["initial_value"].as_str() {
        Some(text) => parse_value(text, ValueKind::Auto).unwrap_or(Value::Null),
        None => Value::Null,
    }
}

/// A trait with its value in one column.
fn trait_row(t: &Value) -> Value {
    let value = match t["value_type"].as_str() {
        Some("int") => t["integer_value"].clone(),
        Some("bool") => t["boolean_value"].clone(),
        Some("float") => t["float_value"].clone(),
        _ => t["string_value"].clone(),
    };
    json!({"trait_key": t["trait_key"], "value_type": t["value_type"], "value": value, "id": t["id"]})
}

/// Percent-encodes a query value.
fn urlencode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_rules_are_read_from_the_command_line() {
        assert_eq!(parse_value("12", ValueKind::Auto).unwrap(), json!(12));
        assert_eq!(parse_value("true", ValueKind::Auto).unwrap(), json!(true));
        assert_eq!(parse_value("12", ValueKind::String).unwrap(), json!("12"));
        assert!(parse_value("x", ValueKind::Integer).is_err());
        assert_eq!(
            parse_condition("plan IN pro, team").unwrap(),
            json!({"operator": "IN", "property": "plan", "value": "pro, team"})
        );
        assert_eq!(
            parse_condition("PERCENTAGE_SPLIT 10").unwrap(),
            json!({"operator": "PERCENTAGE_SPLIT", "property": "", "value": "10"})
        );
        assert_eq!(
            parse_condition("email IS_SET").unwrap()["value"],
            Value::Null
        );
        assert!(parse_condition("lonely").is_err());
        assert_eq!(urlencode("a b@c"), "a%20b%40c");
    }
}
