-- A policy version complete before its untouched decisions are carried over (core/decider.ts).
-- base_version  while set, the version's decisions of the images its edit did not touch are still
--               those of base_version: readers take an image's row under the version, or else its
--               row under base_version (one hop, never further). The worker's pass marks the version
--               complete (API replicas switch) once every touched image is decided, then carries the
--               rest over and clears it. A version that is another's base is never pruned.
-- Forward-only; never edit once landed.
ALTER TABLE policies ADD COLUMN base_version text;
CREATE INDEX policies_base_version_idx ON policies (base_version) WHERE base_version IS NOT NULL;
