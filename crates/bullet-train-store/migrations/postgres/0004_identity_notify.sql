-- Replicas keep identities in memory while they follow the change feed; every statement that
-- changes identities, their traits or any feature state (identity overrides among them) notifies
-- `identities` on the feed's channel, once per transaction (PostgreSQL folds identical
-- notifications of one transaction), so each replica drops what it kept.
CREATE FUNCTION bullet_train_notify_identities() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('bullet_train_changes', 'identities');
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER identities_notify AFTER INSERT OR UPDATE OR DELETE ON identities
    FOR EACH STATEMENT EXECUTE FUNCTION bullet_train_notify_identities();

CREATE TRIGGER traits_notify AFTER INSERT OR UPDATE OR DELETE ON traits
    FOR EACH STATEMENT EXECUTE FUNCTION bullet_train_notify_identities();

CREATE TRIGGER feature_states_notify AFTER INSERT OR UPDATE OR DELETE ON feature_states
    FOR EACH STATEMENT EXECUTE FUNCTION bullet_train_notify_identities();
