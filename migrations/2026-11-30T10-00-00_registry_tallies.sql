-- Registry tallies: what a registry's overview (GraphQL `Registry.summary`, `topSigners`,
-- `outcomes`; the /ui registry page) adds up, kept as counters so that reading it costs the rows of
-- the answer instead of a scan of the registry's images, signatures and decisions.
--
-- Every count is exactly what the aggregate over the ledger gives (the queries these replace):
--   registry_tallies           per registry: repositories, images, images with status <> unsigned
--                              (signed), with status verified
--   registry_image_days        per registry and UTC day of the image's first_seen_at: images
--   registry_signers           per registry and identity: images with a counting signature by it
--                              (identity_id set, not withdrawn), each image once
--   registry_decision_tallies  per registry and policy version: images allowed, denied
--   registry_decision_days     the same per UTC day of the image's first_seen_at
-- (undecided images of a day = images - allowed - denied: an image has one decision per version.)
--
-- How they are kept: statement triggers on repositories, manifests, signatures and decisions stage
-- each statement's net change (from its transition tables) in registry_tally_deltas, under the
-- transaction's id; a deferred constraint trigger folds the transaction's staged changes into the
-- tallies at commit, table by table in key order. Writers thus never wait on each other for a
-- tally while they work, hold a tally row only from the fold to the end of their commit, and always
-- take tally rows in the same order (no deadlock). (Writers of one image's signatures do wait for
-- each other: its row lock, see signet_stage_signatures; ledger writes already hold it.) A
-- statement that changes no count (a re-index, an unchanged re-decision) stages nothing and folds
-- nothing.
--
-- The tallies count by an image's repository, a repository's registry and an image's first_seen_at,
-- which nothing ever changes: an UPDATE that would is refused. TRUNCATE clears what it empties.
-- `SELECT signet_rebuild_registry_tallies()` recomputes everything from the ledger (this migration
-- runs it once, as the backfill). Forward-only; never edit once landed.

-- No writer may change the ledger while the triggers are created and the backfill reads it.
LOCK TABLE registries, repositories, manifests, signatures, decisions IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE registry_tallies (
  registry_id  bigint PRIMARY KEY,
  repositories bigint NOT NULL DEFAULT 0,
  images       bigint NOT NULL DEFAULT 0,
  signed       bigint NOT NULL DEFAULT 0,
  verified     bigint NOT NULL DEFAULT 0
);

CREATE TABLE registry_image_days (
  registry_id bigint NOT NULL,
  -- midnight UTC: date_trunc('day', first_seen_at, 'UTC')
  day         timestamptz NOT NULL,
  images      bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (registry_id, day)
);

CREATE TABLE registry_signers (
  registry_id bigint NOT NULL,
  identity_id bigint NOT NULL,
  images      bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (registry_id, identity_id)
);
-- topSigners: the first rows of this index, in its order.
CREATE INDEX registry_signers_top_idx ON registry_signers (registry_id, images DESC, identity_id) WHERE images > 0;

CREATE TABLE registry_decision_tallies (
  registry_id    bigint NOT NULL,
  policy_version text NOT NULL,
  allowed        bigint NOT NULL DEFAULT 0,
  denied         bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (registry_id, policy_version)
);

CREATE TABLE registry_decision_days (
  registry_id    bigint NOT NULL,
  policy_version text NOT NULL,
  day            timestamptz NOT NULL,
  allowed        bigint NOT NULL DEFAULT 0,
  denied         bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (registry_id, policy_version, day)
);

-- Staged changes, each row living only inside the transaction that wrote it (hence unlogged: a
-- crash aborts that transaction anyway). `kind` says which tallies a row feeds:
--   image     registry_tallies (repositories, images, signed, verified) and, when `day` is set,
--             registry_image_days (images)
--   signer    registry_signers (images)
--   decision  registry_decision_tallies and registry_decision_days (allowed, denied)
CREATE UNLOGGED TABLE registry_tally_deltas (
  tx             xid8 NOT NULL DEFAULT pg_current_xact_id(),
  kind           text NOT NULL CHECK (kind IN ('image', 'signer', 'decision')),
  registry_id    bigint NOT NULL,
  day            timestamptz,
  identity_id    bigint,
  policy_version text,
  repositories   bigint NOT NULL DEFAULT 0,
  images         bigint NOT NULL DEFAULT 0,
  signed         bigint NOT NULL DEFAULT 0,
  verified       bigint NOT NULL DEFAULT 0,
  allowed        bigint NOT NULL DEFAULT 0,
  denied         bigint NOT NULL DEFAULT 0
);
CREATE INDEX registry_tally_deltas_tx_idx ON registry_tally_deltas (tx, kind);

-- One row per transaction with staged changes: inserting it queues the fold at commit.
CREATE UNLOGGED TABLE registry_tally_folds (
  tx xid8 PRIMARY KEY DEFAULT pg_current_xact_id()
);

CREATE FUNCTION signet_fold_registry_tallies() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  me xid8 := pg_current_xact_id();
  has_images boolean;
  has_days boolean;
  has_signers boolean;
  has_decisions boolean;
BEGIN
  -- Changes staged after this (SET CONSTRAINTS ... IMMEDIATE) queue a fold of their own.
  DELETE FROM registry_tally_folds WHERE tx = me;
  SELECT coalesce(bool_or(kind = 'image'), false), coalesce(bool_or(kind = 'image' AND day IS NOT NULL), false),
         coalesce(bool_or(kind = 'signer'), false), coalesce(bool_or(kind = 'decision'), false)
  INTO has_images, has_days, has_signers, has_decisions
  FROM registry_tally_deltas WHERE tx = me;

  IF has_images THEN
    INSERT INTO registry_tallies AS t (registry_id, repositories, images, signed, verified)
    SELECT registry_id, sum(repositories), sum(images), sum(signed), sum(verified)
    FROM registry_tally_deltas WHERE tx = me AND kind = 'image'
    GROUP BY registry_id
    HAVING sum(repositories) <> 0 OR sum(images) <> 0 OR sum(signed) <> 0 OR sum(verified) <> 0
    ORDER BY registry_id
    ON CONFLICT (registry_id) DO UPDATE SET repositories = t.repositories + excluded.repositories, images = t.images + excluded.images,
      signed = t.signed + excluded.signed, verified = t.verified + excluded.verified;
  END IF;

  IF has_days THEN
    INSERT INTO registry_image_days AS t (registry_id, day, images)
    SELECT registry_id, day, sum(images)
    FROM registry_tally_deltas WHERE tx = me AND kind = 'image' AND day IS NOT NULL
    GROUP BY registry_id, day
    HAVING sum(images) <> 0
    ORDER BY registry_id, day
    ON CONFLICT (registry_id, day) DO UPDATE SET images = t.images + excluded.images;
  END IF;

  IF has_signers THEN
    INSERT INTO registry_signers AS t (registry_id, identity_id, images)
    SELECT registry_id, identity_id, sum(images)
    FROM registry_tally_deltas WHERE tx = me AND kind = 'signer'
    GROUP BY registry_id, identity_id
    HAVING sum(images) <> 0
    ORDER BY registry_id, identity_id
    ON CONFLICT (registry_id, identity_id) DO UPDATE SET images = t.images + excluded.images;
  END IF;

  IF has_decisions THEN
    INSERT INTO registry_decision_tallies AS t (registry_id, policy_version, allowed, denied)
    SELECT registry_id, policy_version, sum(allowed), sum(denied)
    FROM registry_tally_deltas WHERE tx = me AND kind = 'decision'
    GROUP BY registry_id, policy_version
    HAVING sum(allowed) <> 0 OR sum(denied) <> 0
    ORDER BY registry_id, policy_version
    ON CONFLICT (registry_id, policy_version) DO UPDATE SET allowed = t.allowed + excluded.allowed, denied = t.denied + excluded.denied;

    INSERT INTO registry_decision_days AS t (registry_id, policy_version, day, allowed, denied)
    SELECT registry_id, policy_version, day, sum(allowed), sum(denied)
    FROM registry_tally_deltas WHERE tx = me AND kind = 'decision'
    GROUP BY registry_id, policy_version, day
    HAVING sum(allowed) <> 0 OR sum(denied) <> 0
    ORDER BY registry_id, policy_version, day
    ON CONFLICT (registry_id, policy_version, day) DO UPDATE SET allowed = t.allowed + excluded.allowed, denied = t.denied + excluded.denied;
  END IF;

  DELETE FROM registry_tally_deltas WHERE tx = me;
  RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER registry_tally_folds_at_commit AFTER INSERT ON registry_tally_folds
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION signet_fold_registry_tallies();

-- Repositories: how many per registry.
CREATE FUNCTION signet_stage_repositories() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO registry_tally_deltas (kind, registry_id, repositories)
    SELECT 'image', registry_id, count(*) FROM new_rows GROUP BY registry_id;
  ELSE
    INSERT INTO registry_tally_deltas (kind, registry_id, repositories)
    SELECT 'image', registry_id, -count(*) FROM old_rows GROUP BY registry_id;
  END IF;
  IF FOUND THEN
    INSERT INTO registry_tally_folds DEFAULT VALUES ON CONFLICT DO NOTHING;
  END IF;
  RETURN NULL;
END;
$$;

-- Images: how many per registry and per day first seen, and how many signed and verified. An
-- UPDATE changes only the last two (the rest is fixed), and a re-index that keeps the status none.
CREATE FUNCTION signet_stage_manifests() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO registry_tally_deltas (kind, registry_id, day, images, signed, verified)
    SELECT 'image', r.registry_id, c.day, sum(c.n), sum(c.signed), sum(c.verified)
    FROM (SELECT repository_id, date_trunc('day', first_seen_at, 'UTC') AS day, count(*) AS n,
                 count(*) FILTER (WHERE status <> 'unsigned') AS signed, count(*) FILTER (WHERE status = 'verified') AS verified
          FROM new_rows GROUP BY 1, 2) c
    JOIN repositories r ON r.id = c.repository_id
    GROUP BY r.registry_id, c.day;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO registry_tally_deltas (kind, registry_id, day, images, signed, verified)
    SELECT 'image', r.registry_id, c.day, -sum(c.n), -sum(c.signed), -sum(c.verified)
    FROM (SELECT repository_id, date_trunc('day', first_seen_at, 'UTC') AS day, count(*) AS n,
                 count(*) FILTER (WHERE status <> 'unsigned') AS signed, count(*) FILTER (WHERE status = 'verified') AS verified
          FROM old_rows GROUP BY 1, 2) c
    JOIN repositories r ON r.id = c.repository_id
    GROUP BY r.registry_id, c.day;
  ELSE
    INSERT INTO registry_tally_deltas (kind, registry_id, signed, verified)
    SELECT 'image', r.registry_id, sum(c.signed), sum(c.verified)
    FROM (SELECT repository_id, sum(CASE WHEN status <> 'unsigned' THEN n ELSE 0 END) AS signed,
                 sum(CASE WHEN status = 'verified' THEN n ELSE 0 END) AS verified
          FROM (SELECT repository_id, status, 1 AS n FROM new_rows UNION ALL SELECT repository_id, status, -1 FROM old_rows) u
          GROUP BY repository_id
          HAVING sum(CASE WHEN status <> 'unsigned' THEN n ELSE 0 END) <> 0 OR sum(CASE WHEN status = 'verified' THEN n ELSE 0 END) <> 0) c
    JOIN repositories r ON r.id = c.repository_id
    GROUP BY r.registry_id;
  END IF;
  IF FOUND THEN
    INSERT INTO registry_tally_folds DEFAULT VALUES ON CONFLICT DO NOTHING;
  END IF;
  RETURN NULL;
END;
$$;

-- Signers: an image counts once for an identity while at least one of its signatures by it counts
-- (identity_id set, not withdrawn). The statement's net change per (image, identity) says how many
-- counting signatures it had before; whether that crossed zero changes the tally. The images are
-- locked first, so that two transactions changing one image's signatures count one after the other
-- (each then reads what the other committed). Ledger writes already hold these locks (the image
-- row is upserted first, under the repository lock).
CREATE FUNCTION signet_stage_signatures() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM 1 FROM manifests WHERE id IN (SELECT manifest_id FROM new_rows WHERE identity_id IS NOT NULL AND withdrawn_at IS NULL) ORDER BY id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
      RETURN NULL;
    END IF;
    INSERT INTO registry_tally_deltas (kind, registry_id, identity_id, images)
    SELECT 'signer', r.registry_id, c.identity_id, sum((k.now > 0)::int - (k.now - c.net > 0)::int)
    FROM (SELECT manifest_id, identity_id, count(*) AS net FROM new_rows WHERE identity_id IS NOT NULL AND withdrawn_at IS NULL GROUP BY 1, 2) c
    CROSS JOIN LATERAL (SELECT count(*) AS now FROM signatures s
                        WHERE s.identity_id = c.identity_id AND s.manifest_id = c.manifest_id AND s.withdrawn_at IS NULL) k
    JOIN manifests m ON m.id = c.manifest_id
    JOIN repositories r ON r.id = m.repository_id
    GROUP BY r.registry_id, c.identity_id
    HAVING sum((k.now > 0)::int - (k.now - c.net > 0)::int) <> 0;
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM 1 FROM manifests WHERE id IN (SELECT manifest_id FROM old_rows WHERE identity_id IS NOT NULL AND withdrawn_at IS NULL) ORDER BY id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
      RETURN NULL;
    END IF;
    INSERT INTO registry_tally_deltas (kind, registry_id, identity_id, images)
    SELECT 'signer', r.registry_id, c.identity_id, sum((k.now > 0)::int - (k.now - c.net > 0)::int)
    FROM (SELECT manifest_id, identity_id, -count(*) AS net FROM old_rows WHERE identity_id IS NOT NULL AND withdrawn_at IS NULL GROUP BY 1, 2) c
    CROSS JOIN LATERAL (SELECT count(*) AS now FROM signatures s
                        WHERE s.identity_id = c.identity_id AND s.manifest_id = c.manifest_id AND s.withdrawn_at IS NULL) k
    JOIN manifests m ON m.id = c.manifest_id
    JOIN repositories r ON r.id = m.repository_id
    GROUP BY r.registry_id, c.identity_id
    HAVING sum((k.now > 0)::int - (k.now - c.net > 0)::int) <> 0;
  ELSE
    -- Most updates change no counting signature (a re-index): nothing to lock or stage.
    PERFORM 1 FROM manifests WHERE id IN (
      SELECT manifest_id
      FROM (SELECT manifest_id, identity_id, 1 AS n FROM new_rows WHERE identity_id IS NOT NULL AND withdrawn_at IS NULL
            UNION ALL
            SELECT manifest_id, identity_id, -1 FROM old_rows WHERE identity_id IS NOT NULL AND withdrawn_at IS NULL) u
      GROUP BY manifest_id, identity_id HAVING sum(n) <> 0) ORDER BY id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
      RETURN NULL;
    END IF;
    INSERT INTO registry_tally_deltas (kind, registry_id, identity_id, images)
    SELECT 'signer', r.registry_id, c.identity_id, sum((k.now > 0)::int - (k.now - c.net > 0)::int)
    FROM (SELECT manifest_id, identity_id, sum(n) AS net
          FROM (SELECT manifest_id, identity_id, 1 AS n FROM new_rows WHERE identity_id IS NOT NULL AND withdrawn_at IS NULL
                UNION ALL
                SELECT manifest_id, identity_id, -1 FROM old_rows WHERE identity_id IS NOT NULL AND withdrawn_at IS NULL) u
          GROUP BY 1, 2 HAVING sum(n) <> 0) c
    CROSS JOIN LATERAL (SELECT count(*) AS now FROM signatures s
                        WHERE s.identity_id = c.identity_id AND s.manifest_id = c.manifest_id AND s.withdrawn_at IS NULL) k
    JOIN manifests m ON m.id = c.manifest_id
    JOIN repositories r ON r.id = m.repository_id
    GROUP BY r.registry_id, c.identity_id
    HAVING sum((k.now > 0)::int - (k.now - c.net > 0)::int) <> 0;
  END IF;
  IF FOUND THEN
    INSERT INTO registry_tally_folds DEFAULT VALUES ON CONFLICT DO NOTHING;
  END IF;
  RETURN NULL;
END;
$$;

-- Decisions: allowed and denied per registry, policy version and day the image was first seen. An
-- upsert that decides an image as before stages nothing.
CREATE FUNCTION signet_stage_decisions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO registry_tally_deltas (kind, registry_id, policy_version, day, allowed, denied)
    SELECT 'decision', r.registry_id, c.policy_version, date_trunc('day', m.first_seen_at, 'UTC'),
           sum(CASE WHEN c.allowed THEN c.n ELSE 0 END), sum(CASE WHEN c.allowed THEN 0 ELSE c.n END)
    FROM (SELECT manifest_id, policy_version, allowed, 1 AS n FROM new_rows) c
    JOIN manifests m ON m.id = c.manifest_id
    JOIN repositories r ON r.id = m.repository_id
    GROUP BY r.registry_id, c.policy_version, date_trunc('day', m.first_seen_at, 'UTC');
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO registry_tally_deltas (kind, registry_id, policy_version, day, allowed, denied)
    SELECT 'decision', r.registry_id, c.policy_version, date_trunc('day', m.first_seen_at, 'UTC'),
           sum(CASE WHEN c.allowed THEN c.n ELSE 0 END), sum(CASE WHEN c.allowed THEN 0 ELSE c.n END)
    FROM (SELECT manifest_id, policy_version, allowed, -1 AS n FROM old_rows) c
    JOIN manifests m ON m.id = c.manifest_id
    JOIN repositories r ON r.id = m.repository_id
    GROUP BY r.registry_id, c.policy_version, date_trunc('day', m.first_seen_at, 'UTC');
  ELSE
    INSERT INTO registry_tally_deltas (kind, registry_id, policy_version, day, allowed, denied)
    SELECT 'decision', r.registry_id, c.policy_version, date_trunc('day', m.first_seen_at, 'UTC'),
           sum(CASE WHEN c.allowed THEN c.n ELSE 0 END), sum(CASE WHEN c.allowed THEN 0 ELSE c.n END)
    FROM (SELECT manifest_id, policy_version, allowed, sum(n) AS n
          FROM (SELECT manifest_id, policy_version, allowed, 1 AS n FROM new_rows
                UNION ALL
                SELECT manifest_id, policy_version, allowed, -1 FROM old_rows) u
          GROUP BY 1, 2, 3 HAVING sum(n) <> 0) c
    JOIN manifests m ON m.id = c.manifest_id
    JOIN repositories r ON r.id = m.repository_id
    GROUP BY r.registry_id, c.policy_version, date_trunc('day', m.first_seen_at, 'UTC');
  END IF;
  IF FOUND THEN
    INSERT INTO registry_tally_folds DEFAULT VALUES ON CONFLICT DO NOTHING;
  END IF;
  RETURN NULL;
END;
$$;

-- TRUNCATE (a rebuilt ledger, a benchmark seed) empties what it counted, and drops what this
-- transaction staged about the emptied rows.
CREATE FUNCTION signet_truncate_registry_tallies() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  me xid8 := pg_current_xact_id();
BEGIN
  IF TG_TABLE_NAME = 'repositories' THEN
    UPDATE registry_tallies SET repositories = 0 WHERE repositories <> 0;
    UPDATE registry_tally_deltas SET repositories = 0 WHERE tx = me AND kind = 'image';
  ELSIF TG_TABLE_NAME = 'manifests' THEN
    UPDATE registry_tallies SET images = 0, signed = 0, verified = 0 WHERE images <> 0 OR signed <> 0 OR verified <> 0;
    DELETE FROM registry_image_days;
    UPDATE registry_tally_deltas SET images = 0, signed = 0, verified = 0 WHERE tx = me AND kind = 'image';
  ELSIF TG_TABLE_NAME = 'signatures' THEN
    DELETE FROM registry_signers;
    DELETE FROM registry_tally_deltas WHERE tx = me AND kind = 'signer';
  ELSIF TG_TABLE_NAME = 'decisions' THEN
    DELETE FROM registry_decision_tallies;
    DELETE FROM registry_decision_days;
    DELETE FROM registry_tally_deltas WHERE tx = me AND kind = 'decision';
  END IF;
  RETURN NULL;
END;
$$;

-- What the tallies count by never changes.
CREATE FUNCTION signet_refuse_tally_key_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '%.% never changes (registry tallies count by it)', TG_TABLE_NAME, TG_ARGV[0];
END;
$$;
CREATE TRIGGER repositories_registry_fixed BEFORE UPDATE OF registry_id ON repositories
  FOR EACH ROW WHEN (OLD.registry_id IS DISTINCT FROM NEW.registry_id) EXECUTE FUNCTION signet_refuse_tally_key_change('registry_id');
CREATE TRIGGER manifests_repository_fixed BEFORE UPDATE OF repository_id ON manifests
  FOR EACH ROW WHEN (OLD.repository_id IS DISTINCT FROM NEW.repository_id) EXECUTE FUNCTION signet_refuse_tally_key_change('repository_id');
CREATE TRIGGER manifests_first_seen_fixed BEFORE UPDATE OF first_seen_at ON manifests
  FOR EACH ROW WHEN (OLD.first_seen_at IS DISTINCT FROM NEW.first_seen_at) EXECUTE FUNCTION signet_refuse_tally_key_change('first_seen_at');

CREATE TRIGGER repositories_tally_insert AFTER INSERT ON repositories REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION signet_stage_repositories();
CREATE TRIGGER repositories_tally_delete AFTER DELETE ON repositories REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION signet_stage_repositories();

CREATE TRIGGER manifests_tally_insert AFTER INSERT ON manifests REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION signet_stage_manifests();
CREATE TRIGGER manifests_tally_update AFTER UPDATE ON manifests REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION signet_stage_manifests();
CREATE TRIGGER manifests_tally_delete AFTER DELETE ON manifests REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION signet_stage_manifests();

CREATE TRIGGER signatures_tally_insert AFTER INSERT ON signatures REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION signet_stage_signatures();
CREATE TRIGGER signatures_tally_update AFTER UPDATE ON signatures REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION signet_stage_signatures();
CREATE TRIGGER signatures_tally_delete AFTER DELETE ON signatures REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION signet_stage_signatures();

CREATE TRIGGER decisions_tally_insert AFTER INSERT ON decisions REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION signet_stage_decisions();
CREATE TRIGGER decisions_tally_update AFTER UPDATE ON decisions REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION signet_stage_decisions();
CREATE TRIGGER decisions_tally_delete AFTER DELETE ON decisions REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION signet_stage_decisions();

CREATE TRIGGER repositories_tally_truncate AFTER TRUNCATE ON repositories FOR EACH STATEMENT EXECUTE FUNCTION signet_truncate_registry_tallies();
CREATE TRIGGER manifests_tally_truncate AFTER TRUNCATE ON manifests FOR EACH STATEMENT EXECUTE FUNCTION signet_truncate_registry_tallies();
CREATE TRIGGER signatures_tally_truncate AFTER TRUNCATE ON signatures FOR EACH STATEMENT EXECUTE FUNCTION signet_truncate_registry_tallies();
CREATE TRIGGER decisions_tally_truncate AFTER TRUNCATE ON decisions FOR EACH STATEMENT EXECUTE FUNCTION signet_truncate_registry_tallies();

-- Every tally recomputed from the ledger, by the aggregates the overview used to run. Takes the
-- same lock as this migration, so no write goes uncounted or counted twice.
CREATE FUNCTION signet_rebuild_registry_tallies() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  LOCK TABLE registries, repositories, manifests, signatures, decisions IN SHARE ROW EXCLUSIVE MODE;
  DELETE FROM registry_tally_deltas WHERE tx = pg_current_xact_id();
  DELETE FROM registry_tallies;
  DELETE FROM registry_image_days;
  DELETE FROM registry_signers;
  DELETE FROM registry_decision_tallies;
  DELETE FROM registry_decision_days;

  INSERT INTO registry_tallies (registry_id, repositories, images, signed, verified)
  SELECT registry_id, sum(repositories), sum(images), sum(signed), sum(verified)
  FROM (SELECT registry_id, count(*) AS repositories, 0 AS images, 0 AS signed, 0 AS verified FROM repositories GROUP BY registry_id
        UNION ALL
        SELECT r.registry_id, 0, count(*), count(*) FILTER (WHERE m.status <> 'unsigned'), count(*) FILTER (WHERE m.status = 'verified')
        FROM manifests m JOIN repositories r ON r.id = m.repository_id GROUP BY r.registry_id) c
  GROUP BY registry_id;

  INSERT INTO registry_image_days (registry_id, day, images)
  SELECT r.registry_id, date_trunc('day', m.first_seen_at, 'UTC'), count(*)
  FROM manifests m JOIN repositories r ON r.id = m.repository_id
  GROUP BY 1, 2;

  INSERT INTO registry_signers (registry_id, identity_id, images)
  SELECT r.registry_id, s.identity_id, count(DISTINCT s.manifest_id)
  FROM signatures s JOIN manifests m ON m.id = s.manifest_id JOIN repositories r ON r.id = m.repository_id
  WHERE s.identity_id IS NOT NULL AND s.withdrawn_at IS NULL
  GROUP BY 1, 2;

  INSERT INTO registry_decision_days (registry_id, policy_version, day, allowed, denied)
  SELECT r.registry_id, d.policy_version, date_trunc('day', m.first_seen_at, 'UTC'), count(*) FILTER (WHERE d.allowed), count(*) FILTER (WHERE NOT d.allowed)
  FROM decisions d JOIN manifests m ON m.id = d.manifest_id JOIN repositories r ON r.id = m.repository_id
  GROUP BY 1, 2, 3;

  INSERT INTO registry_decision_tallies (registry_id, policy_version, allowed, denied)
  SELECT registry_id, policy_version, sum(allowed), sum(denied) FROM registry_decision_days GROUP BY 1, 2;
END;
$$;

-- The backfill.
SELECT signet_rebuild_registry_tallies();
