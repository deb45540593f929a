-- ecos-store schema v1 (PostgreSQL). Keep in step with ../sqlite/0001_init.sql.
-- Dates are ISO 'YYYY-MM-DD' text; instants are microseconds since the Unix epoch;
-- u64 counters are stored order-preserving as (v XOR 2^63) in a signed 64-bit column.

CREATE TABLE registration (
    mpxn            TEXT COLLATE "C" NOT NULL,
    fuel            TEXT    NOT NULL,
    supplier_mpid   TEXT    NOT NULL,
    effective_from  TEXT COLLATE "C" NOT NULL,
    effective_to    TEXT COLLATE "C",
    source_file     TEXT    NOT NULL,
    source_line     BIGINT  NOT NULL,
    PRIMARY KEY (mpxn, effective_from)
);

CREATE TABLE import_files (
    file_id      TEXT    PRIMARY KEY,
    kind         TEXT    NOT NULL,
    mode         TEXT    NOT NULL,
    source       TEXT,
    sequence     BIGINT,
    sha256       TEXT    NOT NULL,
    row_count    BIGINT  NOT NULL,
    imported_at  BIGINT  NOT NULL
);
CREATE UNIQUE INDEX import_files_source ON import_files (kind, source, sequence);

CREATE TABLE devices (
    eui               TEXT    PRIMARY KEY,
    device_type       TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    mpxn              TEXT,
    cos_credential    TEXT,
    ka_cert           BYTEA,
    ds_cert           BYTEA,
    comms_hub_eui     TEXT,
    csp_region        TEXT,
    firmware_version  TEXT,
    last_contact      BIGINT,
    source_file       TEXT,
    source_line       BIGINT
);
CREATE INDEX devices_mpxn ON devices (mpxn);
CREATE INDEX devices_hub ON devices (comms_hub_eui);

CREATE TABLE service_users (
    org_eui            TEXT  PRIMARY KEY,
    name               TEXT  NOT NULL,
    roles              TEXT  NOT NULL,
    mpids              TEXT  NOT NULL,
    response_endpoint  TEXT  NOT NULL
);

CREATE TABLE request_counters (
    originator    TEXT    PRIMARY KEY,
    last_counter  BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);

CREATE TABLE gbcs_counters (
    party         TEXT    PRIMARY KEY,
    next_counter  BIGINT  NOT NULL
);

CREATE TABLE requests (
    request_id       TEXT    PRIMARY KEY,
    originator       TEXT    NOT NULL,
    device_eui       TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    execution_time   BIGINT,
    state            TEXT    NOT NULL,
    decision_reason  TEXT,
    request_xml      TEXT,
    command          BYTEA,
    gbcs_counter     BIGINT,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL
);
CREATE INDEX requests_device ON requests (device_eui, kind, state);

CREATE TABLE audit_log (
    seq        BIGINT  PRIMARY KEY,
    at         BIGINT  NOT NULL,
    actor      TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    detail     TEXT    NOT NULL,
    prev_hash  BYTEA    NOT NULL,
    hash       BYTEA    NOT NULL
);

CREATE TABLE audit_head (
    id    INTEGER  PRIMARY KEY CHECK (id = 1),
    seq   BIGINT   NOT NULL,
    hash  BYTEA     NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

CREATE TABLE outbound (
    id            BIGINT   GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recipient     TEXT     NOT NULL,
    request_id    TEXT,
    kind          TEXT     NOT NULL,
    body          BYTEA     NOT NULL,
    created_at    BIGINT   NOT NULL,
    delivered_at  BIGINT
);
CREATE INDEX outbound_recipient ON outbound (recipient, id);
