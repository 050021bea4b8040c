-- Verification breadth: Sigstore bundles (OCI 1.1 referrers, cosign v3, GitHub attestations) and
-- cosign `.att` attestations beside legacy `.sig` signatures.
--
-- `kind` separates what vouches for an image (a signature: counts for ownership and admission)
-- from what states something about it (an attestation: provenance, SBOM; recorded with its
-- predicate type and, for SLSA provenance, builder and source claims). An attestation's signer is
-- kept on the row (subject/issuer) but never becomes an owner: identity_id stays NULL.

ALTER TABLE signatures DROP CONSTRAINT signatures_format_check;
ALTER TABLE signatures ADD CONSTRAINT signatures_format_check
  CHECK (format IN ('cosign_legacy', 'cosign_attestation', 'sigstore_bundle'));
ALTER TABLE signatures ADD COLUMN kind text NOT NULL DEFAULT 'signature' CHECK (kind IN ('signature', 'attestation'));
ALTER TABLE signatures ADD CONSTRAINT signatures_attestation_owns_nothing CHECK (kind = 'signature' OR identity_id IS NULL);
-- in-toto predicate type of a DSSE statement (https://slsa.dev/provenance/v1, …)
ALTER TABLE signatures ADD COLUMN predicate_type text CHECK (length(predicate_type) <= 1024);
-- RFC 3161 signing time, when the material carries a timestamp (Rekor v2, GitHub's instance)
ALTER TABLE signatures ADD COLUMN tsa_time timestamptz;
-- the manifest bytes a message-signature bundle signs, so it can be re-verified without the registry
ALTER TABLE signatures ADD COLUMN subject_bytes bytea;
CREATE INDEX signatures_predicate_idx ON signatures (predicate_type, manifest_id) WHERE predicate_type IS NOT NULL;

ALTER TABLE manifests ADD COLUMN attestation_count integer NOT NULL DEFAULT 0;
