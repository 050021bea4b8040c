-- Withdrawn signatures. A signature or attestation whose artifact was deleted from the registry, or
-- is no longer what its tag (`sha256-<hex>.sig`, `.att`) or the referrers name, is withdrawn: its
-- row stays (history, re-verification) but it counts for no decision and owns nothing. Found
-- again where clients look (the same signature pushed back), it is un-withdrawn.
-- Forward-only; never edit once landed.

-- when Signet saw it gone, and how: `delete` (a delete notification for its artifact),
-- `reindex` (a push, signature push or re-index no longer found it), `crawl` (a reconciliation crawl)
ALTER TABLE signatures ADD COLUMN withdrawn_at timestamptz;
ALTER TABLE signatures ADD COLUMN withdrawn_by text CHECK (withdrawn_by IN ('delete', 'reindex', 'crawl'));
ALTER TABLE signatures ADD CONSTRAINT signatures_withdrawn_with_cause CHECK ((withdrawn_at IS NULL) = (withdrawn_by IS NULL));

-- A delete notification names the deleted artifact only: its subjects are found by source.
CREATE INDEX signatures_source_idx ON signatures (source_digest);
