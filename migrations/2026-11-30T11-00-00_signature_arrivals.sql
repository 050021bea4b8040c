-- A signature pushed to a signatures repository (cosign's COSIGN_REPOSITORY) names only the digest
-- of the image it is about. Its job queues every image in the ledger with that digest; an image
-- whose own job looked for signatures just before the push and commits just after that lookup
-- would be missed. Each arrival is noted here before the lookup, and an image job that started
-- before a noted arrival looks again after its commit (services/worker/jobs/index-manifest.job.ts).
-- One row per signatures repository and digest: the table grows with the signed digests there,
-- as the ledger does.
CREATE TABLE signature_arrivals (
  registry text NOT NULL,
  repository text NOT NULL,
  digest text NOT NULL,
  arrived_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (registry, repository, digest)
);
