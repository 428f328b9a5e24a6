-- TLS and authentication settings of a source's connections
-- (docs/security.md "PostgreSQL links"): the CA of the server's
-- certificate and a client certificate (PEM text or a path under
-- ROSETTA_KEYS_DIR), the client key sealed like the password, and the
-- authentication methods and channel binding the client accepts. Empty
-- means libpq's default: any method, channel binding when offered.
ALTER TABLE sources
    ADD COLUMN sslrootcert text NOT NULL DEFAULT '',
    ADD COLUMN sslcert text NOT NULL DEFAULT '',
    ADD COLUMN sslkey_enc bytea,
    ADD COLUMN require_auth text NOT NULL DEFAULT '',
    ADD COLUMN channel_binding text NOT NULL DEFAULT '';
