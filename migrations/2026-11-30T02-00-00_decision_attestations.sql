-- Attestation requirements: each decision keeps how every requirement of its rule fared, and when
-- it stops being true by time alone (a condition read `now`, e.g. a vulnerability scan's age). The
-- worker decides such an image again at expires_at; the index finds what is due.

ALTER TABLE decisions ADD COLUMN attestations jsonb;
ALTER TABLE decisions ADD COLUMN expires_at timestamptz;
CREATE INDEX decisions_expiry_idx ON decisions (policy_version, expires_at) WHERE expires_at IS NOT NULL;
