-- A bounded decision table (SIGNET_DECISION_TABLE_MAX) warm-loads the most recently updated tags
-- only, and every table loads its tags a page at a time in that order: this index finds the cutoff
-- and each page without reading or sorting every tag (5M tags at the 10M-signature scale).
CREATE INDEX tags_updated_idx ON tags (updated_at, repository_id, name);
