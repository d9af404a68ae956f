-- Management: organisation API keys, audit log, webhooks and their delivery queue, segment extras.

CREATE TABLE organisation_api_keys (
    id INTEGER PRIMARY KEY,
    organisation_id BIGINT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    prefix TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL,
    name TEXT NOT NULL,
    is_admin BOOLEAN NOT NULL DEFAULT TRUE,
    revoked BOOLEAN NOT NULL DEFAULT FALSE,
    expires_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX organisation_api_keys_organisation ON organisation_api_keys (organisation_id);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    created_at BIGINT NOT NULL,
    author TEXT NOT NULL,
    organisation_id BIGINT,
    project_id BIGINT,
    environment_id BIGINT,
    related_object_type TEXT NOT NULL,
    related_object_id BIGINT,
    related_object_uuid TEXT,
    log TEXT NOT NULL,
    previous_state TEXT,
    new_state TEXT,
    is_system_event BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX audit_log_organisation ON audit_log (organisation_id, id);
CREATE INDEX audit_log_project ON audit_log (project_id, id);
CREATE INDEX audit_log_environment ON audit_log (environment_id, id);

CREATE TABLE webhooks (
    id INTEGER PRIMARY KEY,
    environment_id BIGINT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    secret TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX webhooks_environment ON webhooks (environment_id);

CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY,
    webhook_id BIGINT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_status_code BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);

ALTER TABLE segments ADD COLUMN feature_id BIGINT REFERENCES features (id) ON DELETE CASCADE;
ALTER TABLE segments ADD COLUMN uuid TEXT;
CREATE INDEX identities_environment_identifier_lower ON identities (environment_id, lower(identifier));
ALTER TABLE projects ADD COLUMN uuid TEXT;
ALTER TABLE environments ADD COLUMN uuid TEXT;
ALTER TABLE features ADD COLUMN uuid TEXT;
