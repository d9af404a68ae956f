-- The admin paths read an environment's shared states (defaults and segment overrides) and count
-- its overrides without touching its identity overrides, page identities in id order, and delete a
-- trait from every identity of an environment without visiting the identities that lack it.
CREATE INDEX feature_states_shared_environment ON feature_states (environment_id, feature_id)
    WHERE identity_id IS NULL;
CREATE INDEX identities_environment_id ON identities (environment_id, id);
CREATE INDEX traits_key ON traits (key, identity_id);
