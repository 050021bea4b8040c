-- Admission decisions, precomputed per (manifest, policy version) from the ledger. The API serves
-- them from memory; this table is their durable copy and the fallback on a miss.

CREATE TABLE policies (
  version    text PRIMARY KEY CHECK (version ~ '^sha256:[0-9a-f]{64}$'),
  source     text NOT NULL,
  loaded_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE decisions (
  manifest_id    bigint NOT NULL REFERENCES manifests (id),
  policy_version text NOT NULL,
  allowed        boolean NOT NULL,
  reason         text NOT NULL,
  message        text NOT NULL,
  signers        jsonb NOT NULL DEFAULT '[]',
  rule           text,
  -- when the signatures behind the decision were last verified (the manifest's indexed_at)
  verified_at    timestamptz NOT NULL,
  decided_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (manifest_id, policy_version)
);
CREATE INDEX decisions_policy_idx ON decisions (policy_version);
