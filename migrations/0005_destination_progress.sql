-- Replication progress of each pipeline destination, reported by its sink
-- after committed batches (at most about once a second per pair): the
-- newest applied change's source commit LSN and commit time, and the
-- changes per second it applied over the last minute. The API derives lag
-- from them (docs/observability.md).
ALTER TABLE pipeline_destinations
    -- commit_lsn of the newest change applied (by version); it never moves
    -- back, even when an older change is redelivered or replayed.
    ADD COLUMN applied_commit_lsn  pg_lsn,
    -- commit_time of that change on the source.
    ADD COLUMN applied_commit_time timestamptz,
    -- changes applied per second, averaged over the minute before
    -- progress_at.
    ADD COLUMN throughput          double precision NOT NULL DEFAULT 0,
    -- when the sink last reported progress.
    ADD COLUMN progress_at         timestamptz;
