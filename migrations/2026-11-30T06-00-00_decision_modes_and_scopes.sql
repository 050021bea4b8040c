-- Rollout controls on decisions. `mode` is what admission does with a denial: `enforce` refuses,
-- `warn` admits with a warning, `audit` admits silently. Rows decided before modes existed were
-- decided by policies without one, which enforce: the default says so.
-- `scoped` holds, per namespace scope of the policy, the decision in that scope's namespaces where
-- it differs from the row's own (the decision everywhere else): scope name → {allowed, reason,
-- message, signers, rule, mode}. NULL when no scope differs (and for every policy without scopes).
-- Forward-only; never edit once landed.
ALTER TABLE decisions ADD COLUMN mode text NOT NULL DEFAULT 'enforce' CHECK (mode IN ('enforce', 'warn', 'audit'));
ALTER TABLE decisions ADD COLUMN scoped jsonb;
