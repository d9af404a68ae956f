-- Identity overrides of an environment are found without visiting its identities.
CREATE INDEX feature_states_identity_environment ON feature_states (environment_id)
    WHERE identity_id IS NOT NULL;
