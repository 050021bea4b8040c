-- When the newest complete discovery of a manifest's signatures started (the database's clock).
-- Two jobs about one image can run at once (the image's push, its signature's push): a discovery
-- that started before another one already recorded must not withdraw what the newer one found.
ALTER TABLE manifests ADD COLUMN observed_at timestamptz;
