-- ecos-store schema v6 (postgres): the supplier credentials each device holds after a
-- change of supplier, as the device reported them. Keep in step with the other backend.
CREATE TABLE device_supplier_credentials (
    eui             TEXT    PRIMARY KEY,
    supplier_eui    TEXT    NOT NULL,
    ds_cert         BYTEA,
    ka_cert         BYTEA,
    ka_top_up_cert  BYTEA,
    request_id      TEXT    NOT NULL,
    updated_at      BIGINT  NOT NULL
);
