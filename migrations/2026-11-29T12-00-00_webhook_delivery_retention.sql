-- Webhook deliveries stop growing without bound: a body a source sends again (distribution's
-- retries, a replay) is counted on the row that recorded it first, and rows older than
-- SIGNET_DELIVERY_RETENTION are pruned by the worker.
--
-- A row is one (source, sha256 of the payload as stored): `received_at` is its first receipt,
-- `last_received_at` its latest, `received_count` how many times it came. Everything else on the
-- row (remote address, content type, what Signet did) is the first receipt's.
--
-- The table stays append-only, with two narrow exceptions its trigger checks:
--   UPDATE  only of `received_count` (upwards) and `last_received_at` (never backwards);
--   DELETE  only in a transaction that declared a prune cutoff (`SET LOCAL signet.prune_before`),
--           and only of rows last received before it.
-- TRUNCATE, which row triggers do not see, is refused outright.

DROP TRIGGER webhook_deliveries_append_only ON webhook_deliveries;

ALTER TABLE webhook_deliveries
  ADD COLUMN payload_sha256   text CHECK (payload_sha256 ~ '^[0-9a-f]{64}$'),
  ADD COLUMN received_count   bigint NOT NULL DEFAULT 1 CHECK (received_count >= 1),
  ADD COLUMN last_received_at timestamptz;

-- Existing rows: hash the payload as stored (UTF-8, as Signet hashes it) ...
UPDATE webhook_deliveries
SET payload_sha256 = encode(sha256(convert_to(payload, 'UTF8')), 'hex'),
    last_received_at = received_at;

-- ... and fold the copies already recorded onto the first row of each body, counting them.
WITH bodies AS (
  SELECT source, payload_sha256, min(id) AS kept, count(*) AS copies, max(received_at) AS last
  FROM webhook_deliveries
  GROUP BY source, payload_sha256
  HAVING count(*) > 1
), counted AS (
  UPDATE webhook_deliveries w
  SET received_count = b.copies, last_received_at = b.last
  FROM bodies b
  WHERE w.id = b.kept
)
DELETE FROM webhook_deliveries w
USING bodies b
WHERE w.source = b.source AND w.payload_sha256 = b.payload_sha256 AND w.id <> b.kept;

ALTER TABLE webhook_deliveries
  ALTER COLUMN payload_sha256 SET NOT NULL,
  ALTER COLUMN last_received_at SET NOT NULL,
  ALTER COLUMN last_received_at SET DEFAULT now(),
  ADD CONSTRAINT webhook_deliveries_last_after_first CHECK (last_received_at >= received_at);

CREATE UNIQUE INDEX webhook_deliveries_body_idx ON webhook_deliveries (source, payload_sha256);
CREATE INDEX webhook_deliveries_last_received_idx ON webhook_deliveries (last_received_at);

CREATE FUNCTION signet_webhook_deliveries_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  cutoff timestamptz;
BEGIN
  IF TG_OP = 'UPDATE' THEN
    IF to_jsonb(NEW) - 'received_count' - 'last_received_at' = to_jsonb(OLD) - 'received_count' - 'last_received_at'
       AND NEW.received_count > OLD.received_count
       AND NEW.last_received_at >= OLD.last_received_at THEN
      RETURN NEW;
    END IF;
    RAISE EXCEPTION 'webhook_deliveries is append-only: an update may only count a redelivery (received_count, last_received_at)';
  END IF;
  IF TG_OP = 'DELETE' THEN
    cutoff := nullif(current_setting('signet.prune_before', true), '')::timestamptz;
    IF cutoff IS NOT NULL AND OLD.last_received_at < cutoff THEN
      RETURN OLD;
    END IF;
    RAISE EXCEPTION 'webhook_deliveries is append-only: rows are deleted only by the retention prune, once past its cutoff';
  END IF;
  RAISE EXCEPTION 'webhook_deliveries is append-only: % is refused', TG_OP;
END;
$$;
CREATE TRIGGER webhook_deliveries_append_only BEFORE UPDATE OR DELETE ON webhook_deliveries
  FOR EACH ROW EXECUTE FUNCTION signet_webhook_deliveries_guard();
CREATE TRIGGER webhook_deliveries_no_truncate BEFORE TRUNCATE ON webhook_deliveries
  FOR EACH STATEMENT EXECUTE FUNCTION signet_webhook_deliveries_guard();
