-- The dispatcher takes due jobs in (run_at, id) order, a batch at a time. The old index had run_at only, so
-- jobs queued together (one run_at) formed one presorted group: every pass read and sorted all of them (on disk
-- past work_mem) to take the first thousand. With id in the index, a pass reads just the rows it takes.
CREATE INDEX jobs_due_idx ON jobs (queue, run_at, id) WHERE status = 'queued' AND dispatched_at IS NULL;
DROP INDEX jobs_undispatched_idx;
