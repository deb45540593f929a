-- ecos-store schema v9 (sqlite). Keep in step with ../postgres/0009_open_request_indexes.sql.
-- The service's sweeps (every 30 s) and re-validation ask for open requests only;
-- without these they read the whole requests table, which grows with every 6.23.
-- Partial indexes, so that each holds only the few rows its question is about:
-- commands waiting for their device's answer (`unanswered_requests`), pending
-- future-dated requests (`pending_future_dated`), and party-originated
-- cancellations not yet sent (`unsent_party_cancellations`). The queries name the
-- kinds and states as literals so that SQLite's planner can use them.
CREATE INDEX requests_dispatched ON requests (updated_at)
    WHERE state = 'dispatched';
CREATE INDEX requests_pending_future_dated ON requests (request_id)
    WHERE kind = 'future-dated' AND state IN ('accepted', 'dispatched');
CREATE INDEX requests_unsent_party_cancellations ON requests (created_at)
    WHERE kind = 'cancellation' AND state = 'accepted' AND request_xml IS NULL;
