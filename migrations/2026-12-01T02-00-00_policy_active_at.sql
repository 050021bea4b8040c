-- When a worker's pass last worked under a policy version (its start and each progress tick): the
-- policy versions' retention (SIGNET_POLICY_VERSION_RETENTION) never prunes a version a pass has
-- worked under since the last version to complete (a rollback to an older version, say).
-- Forward-only; never edit once landed.
ALTER TABLE policies ADD COLUMN active_at timestamptz;
