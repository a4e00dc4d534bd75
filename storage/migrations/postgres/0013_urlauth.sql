-- RFC 4467 URLAUTH mailbox access keys, as SQLite migration 0016.
CREATE TABLE urlauth_keys (
    mailbox_id  BIGINT PRIMARY KEY REFERENCES mailboxes(id) ON DELETE CASCADE,
    access_key  BYTEA NOT NULL
);
