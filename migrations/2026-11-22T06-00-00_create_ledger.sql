-- The ownership ledger: who signed what, keyed by digest (never by tag), plus every webhook
-- delivery as received. Forward-only; never edit once landed.

CREATE TABLE registries (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  host          text NOT NULL UNIQUE CHECK (host = lower(host) AND length(host) BETWEEN 1 AND 255),
  first_seen_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE repositories (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  registry_id   bigint NOT NULL REFERENCES registries (id),
  name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
  first_seen_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (registry_id, name)
);

-- One row per (repository, digest): a pushed image manifest or index. `status` summarises its
-- signatures (verified if any verified, unsigned if none was found, else the most telling failure).
CREATE TABLE manifests (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  repository_id  bigint NOT NULL REFERENCES repositories (id),
  digest         text NOT NULL CHECK (digest ~ '^sha256:[0-9a-f]{64}$'),
  media_type     text NOT NULL,
  size           bigint NOT NULL CHECK (size >= 0),
  status         text NOT NULL CHECK (status IN ('unsigned', 'verified', 'invalid_signature', 'digest_mismatch',
                   'untrusted_root', 'identity_mismatch', 'tlog_missing', 'tlog_invalid', 'cert_invalid', 'malformed')),
  status_reason  text,
  signature_count integer NOT NULL DEFAULT 0,
  verified_count  integer NOT NULL DEFAULT 0,
  first_seen_at  timestamptz NOT NULL DEFAULT now(),
  indexed_at     timestamptz NOT NULL DEFAULT now(),
  deleted_at     timestamptz,
  UNIQUE (repository_id, digest)
);
CREATE INDEX manifests_digest_idx ON manifests (digest);

-- Children of an index (multi-arch images), with the platform the index names them for.
CREATE TABLE manifest_children (
  index_id              bigint NOT NULL REFERENCES manifests (id),
  child_id              bigint NOT NULL REFERENCES manifests (id),
  position              integer NOT NULL,
  platform_os           text,
  platform_architecture text,
  platform_variant      text,
  PRIMARY KEY (index_id, child_id)
);
CREATE INDEX manifest_children_child_idx ON manifest_children (child_id);

-- Where each tag points now ...
CREATE TABLE tags (
  repository_id bigint NOT NULL REFERENCES repositories (id),
  name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
  digest        text NOT NULL CHECK (digest ~ '^sha256:[0-9a-f]{64}$'),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (repository_id, name)
);

-- ... and every move it ever made (append-only).
CREATE TABLE tag_history (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  repository_id   bigint NOT NULL REFERENCES repositories (id),
  name            text NOT NULL,
  digest          text NOT NULL CHECK (digest ~ '^sha256:[0-9a-f]{64}$'),
  previous_digest text CHECK (previous_digest ~ '^sha256:[0-9a-f]{64}$'),
  seen_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tag_history_tag_idx ON tag_history (repository_id, name, seen_at);

-- Signer identities: (subject, issuer) for Fulcio certificates, (key fingerprint, NULL) for keys.
CREATE TABLE identities (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind          text NOT NULL CHECK (kind IN ('email', 'uri', 'key')),
  subject       text NOT NULL,
  issuer        text,
  first_seen_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE NULLS NOT DISTINCT (subject, issuer)
);

CREATE TABLE signatures (
  id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  manifest_id             bigint NOT NULL REFERENCES manifests (id),
  -- sha256 over the signature material (layer digest + annotations): one row per distinct signature.
  material_digest         text NOT NULL CHECK (material_digest ~ '^sha256:[0-9a-f]{64}$'),
  format                  text NOT NULL CHECK (format IN ('cosign_legacy')),
  source_digest           text NOT NULL CHECK (source_digest ~ '^sha256:[0-9a-f]{64}$'),
  layer_index             integer NOT NULL,
  layer_digest            text NOT NULL,
  outcome                 text NOT NULL CHECK (outcome IN ('verified', 'invalid_signature', 'digest_mismatch',
                            'untrusted_root', 'identity_mismatch', 'tlog_missing', 'tlog_invalid', 'cert_invalid', 'malformed')),
  reason                  text,
  identity_id             bigint REFERENCES identities (id),
  subject                 text,
  issuer                  text,
  claims                  jsonb NOT NULL DEFAULT '{}',
  key_fingerprint         text,
  key_source              text CHECK (key_source IN ('certificate', 'trusted_key', 'tlog')),
  key_name                text,
  certificate_fingerprint text,
  certificate_not_before  timestamptz,
  certificate_not_after   timestamptz,
  rekor_log_id            text,
  rekor_log_index         bigint CHECK (rekor_log_index >= 0),
  rekor_integrated_time   timestamptz,
  trust_root_version      text,
  -- raw material, so a new policy or trust root can be re-evaluated without the registry
  payload                 bytea NOT NULL,
  annotations             jsonb NOT NULL,
  first_seen_at           timestamptz NOT NULL DEFAULT now(),
  verified_at             timestamptz NOT NULL DEFAULT now(),
  UNIQUE (manifest_id, material_digest)
);
CREATE INDEX signatures_manifest_idx ON signatures (manifest_id);
CREATE INDEX signatures_identity_idx ON signatures (identity_id, manifest_id) WHERE identity_id IS NOT NULL;
CREATE INDEX signatures_claims_idx ON signatures USING gin (claims jsonb_path_ops);

-- Every webhook delivery exactly as received, with what Signet did with it. Append-only.
CREATE TABLE webhook_deliveries (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  source       text NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now(),
  remote_addr  text,
  content_type text,
  status_code  integer NOT NULL,
  result       text NOT NULL,
  event_count  integer NOT NULL DEFAULT 0,
  job_ids      text[] NOT NULL DEFAULT '{}',
  payload      text NOT NULL
);
CREATE INDEX webhook_deliveries_received_idx ON webhook_deliveries (received_at);

CREATE FUNCTION signet_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER webhook_deliveries_append_only BEFORE UPDATE OR DELETE ON webhook_deliveries
  FOR EACH ROW EXECUTE FUNCTION signet_append_only();
CREATE TRIGGER tag_history_append_only BEFORE UPDATE OR DELETE ON tag_history
  FOR EACH ROW EXECUTE FUNCTION signet_append_only();
