-- ecos-store schema v7 (sqlite): counters of the migration kept in the same transaction as
-- the transitions, so that status, metrics and the runner's throttles read a few rows
-- instead of grouping the whole population. Keep in step with ../postgres/0007_migration_counts.sql.

-- Tracked devices by state and CSP region ('-' for none).
CREATE TABLE migration_state_counts (
    state       TEXT    NOT NULL,
    csp_region  TEXT    NOT NULL,
    n           BIGINT  NOT NULL,
    PRIMARY KEY (state, csp_region)
);
INSERT INTO migration_state_counts (state, csp_region, n)
    SELECT state, COALESCE(csp_region, '-'), COUNT(*) FROM migration_devices
    GROUP BY state, COALESCE(csp_region, '-');

-- Reasons of devices not progressing (retry-waiting, failed-permanent, excluded,
-- not-eligible, paused); a row leaves when its count reaches zero.
CREATE TABLE migration_reason_counts (
    reason  TEXT    PRIMARY KEY,
    n       BIGINT  NOT NULL
);
INSERT INTO migration_reason_counts (reason, n)
    SELECT reason, COUNT(*) FROM migration_devices WHERE reason IS NOT NULL
    AND state IN ('retry-waiting', 'failed-permanent', 'excluded', 'not-eligible', 'paused')
    GROUP BY reason;

-- Commands sent (transitions to 'sent') per UTC day (microseconds of its start): scope
-- 'all' (key ''), 'region' (key the region) and 'hub' (key the comms hub EUI).
CREATE TABLE migration_sent_counts (
    day    BIGINT  NOT NULL,
    scope  TEXT    NOT NULL,
    key    TEXT    NOT NULL,
    n      BIGINT  NOT NULL,
    PRIMARY KEY (day, scope, key)
);
INSERT INTO migration_sent_counts (day, scope, key, n)
    SELECT at - (at % 86400000000), 'all', '', COUNT(*) FROM migration_transitions
    WHERE to_state = 'sent' GROUP BY at - (at % 86400000000);
INSERT INTO migration_sent_counts (day, scope, key, n)
    SELECT at - (at % 86400000000), 'region', csp_region, COUNT(*) FROM migration_transitions
    WHERE to_state = 'sent' AND csp_region IS NOT NULL
    GROUP BY at - (at % 86400000000), csp_region;
INSERT INTO migration_sent_counts (day, scope, key, n)
    SELECT at - (at % 86400000000), 'hub', comms_hub_eui, COUNT(*) FROM migration_transitions
    WHERE to_state = 'sent' AND comms_hub_eui IS NOT NULL
    GROUP BY at - (at % 86400000000), comms_hub_eui;
