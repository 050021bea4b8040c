-- Incremental re-decision (the worker's pass after a policy change or at start). Per policy version:
-- decided_by   the Signet version whose decisions count under it. A worker of another version
--              claims it anew (decision logic may differ between versions): decisions made before
-- decided_from are then not counted, and are made again.
-- complete_at  when every image had a counted decision under it (the pass finished); NULL while a
--              pass is under way. API replicas switch to a new policy only once it is set, and the
--              worker carries unchanged decisions over from the last complete version.
-- Forward-only; never edit once landed.
ALTER TABLE policies ADD COLUMN decided_by text;
ALTER TABLE policies ADD COLUMN decided_from timestamptz;
ALTER TABLE policies ADD COLUMN complete_at timestamptz;
