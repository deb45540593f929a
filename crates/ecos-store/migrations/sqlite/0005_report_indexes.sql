-- ecos-store schema v5 (SQLite). Keep in step with ../postgres/0005_report_indexes.sql.
-- Indexes for reports over a time window (`ecos report`, the dashboard): decisions in the audit log by action and instant, requests by instant.
CREATE INDEX audit_log_action_at ON audit_log (action, at);
CREATE INDEX requests_created ON requests (created_at);
