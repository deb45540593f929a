-- ecos-store schema v4 (postgres): indexed migration selection, so that a runner step costs
-- O(batch), not O(population). Keep in step with the other backend's 0004.

-- Tracked devices by state, in EUI order (the candidate pool, paused devices).
CREATE INDEX migration_devices_state_eui ON migration_devices (state, eui);
-- Transitional devices in EUI order (the discovery cursor).
CREATE INDEX devices_cos_eui ON devices (cos_credential, eui);
-- Registrations starting after a date (devices with a switch coming).
CREATE INDEX registration_effective_from ON registration (effective_from);

-- Where the discovery of untracked devices has got to, and how many full passes it made.
CREATE TABLE migration_cursor (
    name  TEXT    PRIMARY KEY,
    eui   TEXT    NOT NULL,
    pass  BIGINT  NOT NULL
);
