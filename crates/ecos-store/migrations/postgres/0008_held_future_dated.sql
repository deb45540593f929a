-- ecos-store schema v8 (postgres). Keep in step with ../sqlite/0008_held_future_dated.sql.
-- Future-dated 6.23s held for dispatch (`party.fd_dispatch_lead_secs`): the sweep that
-- sends them asks for the accepted ones due by an instant. A partial index, so that only
-- future-dated requests while they are accepted are in it (immediate requests never are).
CREATE INDEX requests_held_future_dated ON requests (execution_time)
    WHERE kind = 'future-dated' AND state = 'accepted';
