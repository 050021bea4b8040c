-- A bounded decision table (SIGNET_DECISION_TABLE_MAX) warm-loads the most recently decided images
-- under the policy in force: this index finds the cutoff without sorting the whole ledger.
CREATE INDEX decisions_policy_decided_idx ON decisions (policy_version, decided_at DESC);
