CREATE INDEX requests_gbcs_counter ON requests (device_eui, gbcs_counter);
