-- ecos-store schema v3 (SQLite): TCoS -> ECoS migration state. Keep in step with
-- ../postgres/0003_migration.sql.

-- One row per device the migration knows about: its current state.
CREATE TABLE migration_devices (
    eui            TEXT    PRIMARY KEY,
    state          TEXT    NOT NULL,
    version        BIGINT  NOT NULL,
    attempts       BIGINT  NOT NULL,
    next_at        BIGINT,
    reason         TEXT,
    failure_class  TEXT,
    batch          BIGINT,
    gbcs_counter   BIGINT,
    sent_at        BIGINT,
    comms_hub_eui  TEXT,
    csp_region     TEXT,
    updated_at     BIGINT  NOT NULL
);
CREATE INDEX migration_devices_state ON migration_devices (state, next_at);

-- Every state change, in order.
CREATE TABLE migration_transitions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    eui            TEXT    NOT NULL,
    from_state     TEXT,
    to_state       TEXT    NOT NULL,
    attempt        BIGINT  NOT NULL,
    at             BIGINT  NOT NULL,
    comms_hub_eui  TEXT,
    csp_region     TEXT,
    gbcs_counter   BIGINT,
    detail         TEXT    NOT NULL
);
CREATE INDEX migration_transitions_eui ON migration_transitions (eui, id);
CREATE INDEX migration_transitions_to ON migration_transitions (to_state, at);

-- Device messages received for the migration, kept until processed.
CREATE TABLE migration_inbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    device       TEXT    NOT NULL,
    bytes        BLOB    NOT NULL,
    received_at  BIGINT  NOT NULL
);
