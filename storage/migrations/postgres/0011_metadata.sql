-- RFC 5464 METADATA annotations of mailboxes and of the server, as SQLite migration 0014.
CREATE TABLE mailbox_metadata (
    mailbox_id  BIGINT NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    value       BYTEA NOT NULL,
    PRIMARY KEY (mailbox_id, name)
);
CREATE TABLE server_metadata (
    account_id  BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    value       BYTEA NOT NULL,
    PRIMARY KEY (account_id, name)
);
