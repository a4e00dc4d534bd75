-- RFC 4467 URLAUTH: the mailbox access key of each mailbox that has one (a random key
-- unique to the mailbox), made by the first GENURLAUTH on the mailbox and replaced by
-- RESETKEY. The owning account is the mailbox's. A key goes with its mailbox (and so with its account) when that is
-- deleted, which revokes every URL it authorised; a RENAME keeps the mailbox's id, and
-- URLs naming the old name name nothing.
CREATE TABLE urlauth_keys (
    mailbox_id  INTEGER PRIMARY KEY REFERENCES mailboxes(id) ON DELETE CASCADE,
    access_key  BLOB NOT NULL
);
