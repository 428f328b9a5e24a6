-- Completion backfills (docs/delivery.md, "Incompletable partial changes"):
-- the sink asks the backfill worker to read the rows a partial change left
-- with columns no change will ever provide.
ALTER TABLE backfill_jobs DROP CONSTRAINT backfill_jobs_kind_check;
ALTER TABLE backfill_jobs ADD CONSTRAINT backfill_jobs_kind_check CHECK (kind IN ('snapshot', 'backfill', 'completion'));
