-- Browsing the ledger (GraphQL lists and /ui): prefix search over registries, repositories and
-- identities; images by status and by decision reason; the webhook deliveries that name a digest.
-- Every list is a keyset page over one of these indexes. Forward-only; never edit once landed.

-- Prefix search in byte order: `name COLLATE "C" LIKE 'org/ap%'` is a range scan whatever the
-- database's collation, and pages go on by (name, id).
CREATE INDEX registries_host_prefix_idx ON registries ((host COLLATE "C"), id);
CREATE INDEX repositories_name_prefix_idx ON repositories ((name COLLATE "C"), id);
CREATE INDEX repositories_registry_name_prefix_idx ON repositories (registry_id, (name COLLATE "C"), id);
CREATE INDEX identities_subject_prefix_idx ON identities ((subject COLLATE "C"), id);

-- Images by status (all unsigned images), newest first.
CREATE INDEX manifests_status_idx ON manifests (status, id);

-- Images by decision reason under a policy version (all images denied as `unsigned`).
CREATE INDEX decisions_reason_idx ON decisions (policy_version, reason, manifest_id);

-- The digests a delivery's payload names (`sha256:<64 hex>`, wherever they appear in it): "did the
-- registry ever tell us about this digest?" is an index lookup, and ingest records deliveries as
-- before (the index is kept by Postgres on insert). Its cost is declared high so that the planner
-- never prefers evaluating it row by row (a newest-first scan of every delivery) to the index.
CREATE FUNCTION signet_payload_digests(payload text) RETURNS text[]
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE COST 10000
  RETURN ARRAY(SELECT DISTINCT m[1] FROM regexp_matches(payload, '(sha256:[0-9a-f]{64})', 'g') AS m);
CREATE INDEX webhook_deliveries_digests_idx ON webhook_deliveries USING gin (signet_payload_digests(payload));

-- Denials under a policy version, newest decision first, in pages.
CREATE INDEX decisions_denied_idx ON decisions (policy_version, decided_at DESC, manifest_id DESC) WHERE NOT allowed;
