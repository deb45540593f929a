-- ecos-store schema v6 (sqlite): the supplier credentials each device holds after a
-- change of supplier, as the device reported them. Keep in step with the other backend.
CREATE TABLE device_supplier_credentials (
    eui             TEXT    PRIMARY KEY,
    supplier_eui    TEXT    NOT NULL,
    ds_cert         BLOB,
    ka_cert         BLOB,
    ka_top_up_cert  BLOB,
    request_id      TEXT    NOT NULL,
    updated_at      BIGINT  NOT NULL
);
