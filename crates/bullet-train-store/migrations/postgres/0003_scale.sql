-- Identity overrides of an environment are found without visiting its identities.
CREATE INDEX feature_states_identity_environment ON feature_states (environment_id)
    WHERE identity_id IS NOT NULL;

-- Prefix search of identifiers (ignoring case) by index whatever the database's collation.
DROP INDEX identities_environment_identifier_lower;
CREATE INDEX identities_environment_identifier_lower
    ON identities (environment_id, lower(identifier) text_pattern_ops);

-- Replicas sharing this database learn of every change through LISTEN/NOTIFY on one channel:
-- `environment:<id>:<revision>` when an environment is created or changes, `deleted:<id>` when it is
-- deleted, `keys` when server-side keys change. Notifications are delivered when the transaction
-- commits, and not at all if it rolls back.
CREATE FUNCTION bullet_train_notify_environment() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('bullet_train_changes', 'deleted:' || OLD.id);
        RETURN OLD;
    END IF;
    PERFORM pg_notify('bullet_train_changes', 'environment:' || NEW.id || ':' || NEW.revision);
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER environments_notify AFTER INSERT OR UPDATE OR DELETE ON environments
    FOR EACH ROW EXECUTE FUNCTION bullet_train_notify_environment();

CREATE FUNCTION bullet_train_notify_keys() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('bullet_train_changes', 'keys');
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER server_keys_notify AFTER INSERT OR UPDATE OR DELETE ON server_keys
    FOR EACH STATEMENT EXECUTE FUNCTION bullet_train_notify_keys();
