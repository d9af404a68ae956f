-- Flagsmith's project settings: new features' states without the feature's defaults, feature-name
-- rules, and the age after which a flag counts as stale.
ALTER TABLE projects ADD COLUMN prevent_flag_defaults BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE projects ADD COLUMN only_allow_lower_case_feature_names BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE projects ADD COLUMN feature_name_regex TEXT;
ALTER TABLE projects ADD COLUMN stale_flags_limit_days BIGINT NOT NULL DEFAULT 30;
