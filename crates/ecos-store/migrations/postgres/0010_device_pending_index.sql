-- ecos-store schema v10 (postgres). Keep in step with ../sqlite/0010_device_pending_index.sql.
-- Every 6.23 asks for its device's pending future-dated request, the earliest by
-- execution time (the checks' request context and `pending_future_dated_for_device`).
-- Through `requests_device` that took a table for the IN list of states and a sort
-- for the ORDER BY on every request; this partial index holds only pending
-- future-dated requests, in the order asked for, so the answer is one seek. Its
-- WHERE is the queries' own, word for word, so that SQLite's planner can use it.
CREATE INDEX requests_device_pending ON requests (device_eui, execution_time, created_at)
    WHERE kind = 'future-dated' AND state IN ('received', 'accepted', 'dispatched');
