-- Where an interrupted reconciliation crawl (signet backfill, the scheduled reconcile) resumes: the
-- last repository of the registry's catalog it finished. A row exists only while a crawl of that
-- registry is unfinished. Forward-only; never edit once landed.

CREATE TABLE crawl_cursors (
  registry        text NOT NULL CHECK (registry = lower(registry) AND length(registry) BETWEEN 1 AND 255),
  last_repository text,
  started_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (registry)
);
