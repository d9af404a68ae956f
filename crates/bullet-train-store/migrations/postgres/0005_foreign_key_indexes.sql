-- Deleting a feature cascades to the segments scoped to it and to its analytics counts: index the
-- referencing columns, so a delete finds those rows without scanning the tables.
CREATE INDEX segments_feature ON segments (feature_id) WHERE feature_id IS NOT NULL;
CREATE INDEX flag_analytics_feature ON flag_analytics (feature_id);
