-- The admission record: one row per AdmissionReview Signet answered (validation), written by the
-- API role in batches, off the admission path. Rows are pruned after SIGNET_ADMISSION_RETENTION.
--
-- `images` holds each image of the request as decided (image, digest, allowed, reason, rule, mode);
-- `search_keys` is what the image filter matches, all from `images`: each image as written, its
-- repository (`registry/path`, no tag or digest) and its digest, and each image's reason prefixed
-- `reason:`, so one GIN index serves both filters.
CREATE TABLE admission_records (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at          timestamptz NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  uid         text NOT NULL,
  namespace   text,
  kind        text NOT NULL,
  name        text,
  operation   text,
  username    text,
  result      text NOT NULL CHECK (result IN ('allowed', 'warned', 'denied', 'exempted')),
  -- The reason that decided the request (the first image whose decision made the result).
  reason      text NOT NULL,
  break_glass boolean NOT NULL DEFAULT false,
  images      jsonb NOT NULL CHECK (jsonb_typeof(images) = 'array'),
  search_keys text[] NOT NULL DEFAULT '{}'
);

-- Newest first, alone or filtered by namespace or result (the connection's order is (at, id) desc).
CREATE INDEX admission_records_at_idx ON admission_records (at DESC, id DESC);
CREATE INDEX admission_records_namespace_at_idx ON admission_records (namespace, at DESC, id DESC);
CREATE INDEX admission_records_result_at_idx ON admission_records (result, at DESC, id DESC);
CREATE INDEX admission_records_search_idx ON admission_records USING gin (search_keys);
