-- Initial schema. Times are microseconds since the Unix epoch; values are JSON scalars as text.

CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE organisations (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    persist_trait_data BOOLEAN NOT NULL DEFAULT TRUE,
    feature_analytics BOOLEAN NOT NULL DEFAULT FALSE,
    stop_serving_flags BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);

CREATE TABLE projects (
    id INTEGER PRIMARY KEY,
    organisation_id BIGINT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    hide_disabled_flags BOOLEAN NOT NULL DEFAULT FALSE,
    enable_realtime_updates BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT NOT NULL
);
CREATE INDEX projects_organisation ON projects (organisation_id);

CREATE TABLE environments (
    id INTEGER PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    api_key TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    description TEXT,
    allow_client_traits BOOLEAN NOT NULL DEFAULT TRUE,
    hide_sensitive_data BOOLEAN NOT NULL DEFAULT FALSE,
    hide_disabled_flags BOOLEAN,
    use_identity_composite_key_for_hashing BOOLEAN NOT NULL DEFAULT TRUE,
    use_identity_overrides_in_local_eval BOOLEAN NOT NULL DEFAULT TRUE,
    updated_at BIGINT NOT NULL,
    revision BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL
);
CREATE INDEX environments_project ON environments (project_id);

CREATE TABLE server_keys (
    id INTEGER PRIMARY KEY,
    environment_id BIGINT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    name TEXT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    expires_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX server_keys_environment ON server_keys (environment_id);

CREATE TABLE features (
    id INTEGER PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    -- Lowercased name: names are unique per project ignoring case.
    name_key TEXT NOT NULL,
    type TEXT NOT NULL DEFAULT 'STANDARD',
    description TEXT,
    initial_value TEXT,
    default_enabled BOOLEAN NOT NULL DEFAULT FALSE,
    is_server_key_only BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX features_project_name ON features (project_id, name_key);

CREATE TABLE multivariate_options (
    id INTEGER PRIMARY KEY,
    feature_id BIGINT NOT NULL REFERENCES features (id) ON DELETE CASCADE,
    value TEXT NOT NULL,
    default_percentage_allocation DOUBLE PRECISION NOT NULL DEFAULT 0,
    key TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX multivariate_options_feature ON multivariate_options (feature_id);

CREATE TABLE segments (
    id INTEGER PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT,
    seed BIGINT NOT NULL,
    rules TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX segments_project ON segments (project_id);

CREATE TABLE feature_segments (
    id INTEGER PRIMARY KEY,
    feature_id BIGINT NOT NULL REFERENCES features (id) ON DELETE CASCADE,
    segment_id BIGINT NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    environment_id BIGINT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    priority BIGINT NOT NULL,
    UNIQUE (feature_id, segment_id, environment_id)
);
CREATE INDEX feature_segments_environment ON feature_segments (environment_id);
CREATE INDEX feature_segments_segment ON feature_segments (segment_id);

CREATE TABLE identities (
    id INTEGER PRIMARY KEY,
    environment_id BIGINT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    identifier TEXT NOT NULL,
    uuid TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (environment_id, identifier)
);

CREATE TABLE feature_states (
    id INTEGER PRIMARY KEY,
    feature_id BIGINT NOT NULL REFERENCES features (id) ON DELETE CASCADE,
    environment_id BIGINT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    feature_segment_id BIGINT REFERENCES feature_segments (id) ON DELETE CASCADE,
    identity_id BIGINT REFERENCES identities (id) ON DELETE CASCADE,
    enabled BOOLEAN NOT NULL,
    value TEXT NOT NULL,
    seed BIGINT,
    uuid TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX feature_states_default ON feature_states (environment_id, feature_id)
    WHERE feature_segment_id IS NULL AND identity_id IS NULL;
CREATE UNIQUE INDEX feature_states_segment ON feature_states (feature_segment_id)
    WHERE feature_segment_id IS NOT NULL;
CREATE UNIQUE INDEX feature_states_identity ON feature_states (identity_id, feature_id)
    WHERE identity_id IS NOT NULL;
CREATE INDEX feature_states_feature ON feature_states (feature_id);

CREATE TABLE multivariate_values (
    id INTEGER PRIMARY KEY,
    feature_state_id BIGINT NOT NULL REFERENCES feature_states (id) ON DELETE CASCADE,
    option_id BIGINT NOT NULL REFERENCES multivariate_options (id) ON DELETE CASCADE,
    percentage_allocation DOUBLE PRECISION NOT NULL,
    sort_key BIGINT NOT NULL,
    uuid TEXT NOT NULL,
    UNIQUE (feature_state_id, option_id)
);
CREATE INDEX multivariate_values_option ON multivariate_values (option_id);
CREATE INDEX multivariate_values_sort_key ON multivariate_values (sort_key);

CREATE TABLE traits (
    id INTEGER PRIMARY KEY,
    identity_id BIGINT NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (identity_id, key)
);

CREATE TABLE flag_analytics (
    environment_id BIGINT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    feature_id BIGINT NOT NULL REFERENCES features (id) ON DELETE CASCADE,
    day TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (environment_id, feature_id, day)
);
