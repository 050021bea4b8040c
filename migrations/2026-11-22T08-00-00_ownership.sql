-- Ownership: the first time each identity signs (verified) an image in a repository. A row of kind
-- `added` is ownership drift — an identity never seen signing the repository before — and is sent
-- to SIGNET_ALERT_WEBHOOK_URL; `initial` is the first signer of a repository nobody signed yet.

CREATE TABLE ownership_changes (
  id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  repository_id      bigint NOT NULL REFERENCES repositories (id),
  identity_id        bigint NOT NULL REFERENCES identities (id),
  -- the image whose signature introduced the identity to the repository
  manifest_id        bigint NOT NULL REFERENCES manifests (id),
  kind               text NOT NULL CHECK (kind IN ('initial', 'added')),
  -- identities that had signed in the repository before
  previous_owner_ids bigint[] NOT NULL DEFAULT '{}',
  detected_at        timestamptz NOT NULL DEFAULT now(),
  -- when the alert was delivered (NULL: pending, or no alert is due)
  notified_at        timestamptz,
  UNIQUE (repository_id, identity_id)
);
CREATE INDEX ownership_changes_repository_idx ON ownership_changes (repository_id, id);
CREATE INDEX ownership_changes_identity_idx ON ownership_changes (identity_id, id);
CREATE INDEX ownership_changes_pending_idx ON ownership_changes (id) WHERE notified_at IS NULL AND kind = 'added';

-- The ledger so far, in the order signatures were first recorded; history is not alerted on.
INSERT INTO ownership_changes (repository_id, identity_id, manifest_id, kind, previous_owner_ids, detected_at, notified_at)
SELECT repository_id, identity_id, manifest_id,
       CASE WHEN rank = 1 THEN 'initial' ELSE 'added' END,
       coalesce(previous, '{}'), first_seen_at, now()
FROM (
  SELECT f.*,
         row_number() OVER w AS rank,
         array_agg(identity_id) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS previous
  FROM (
    SELECT DISTINCT ON (m.repository_id, s.identity_id)
           m.repository_id, s.identity_id, s.manifest_id, s.id AS signature_id, s.first_seen_at
    FROM signatures s JOIN manifests m ON m.id = s.manifest_id
    WHERE s.identity_id IS NOT NULL
    ORDER BY m.repository_id, s.identity_id, s.id
  ) f
  WINDOW w AS (PARTITION BY repository_id ORDER BY signature_id)
) ranked;

-- Reads the GraphQL API makes: a repository's images newest first, the tags naming a digest.
CREATE INDEX manifests_repository_idx ON manifests (repository_id, id);
CREATE INDEX tags_digest_idx ON tags (repository_id, digest);
CREATE INDEX tag_history_repository_idx ON tag_history (repository_id, id);
