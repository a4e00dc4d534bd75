-- The subscription list as names apart from the mailboxes (as SQLite migration 0010):
-- a subscribed name outlives a DELETE or RENAME of its mailbox (RFC 9051 §6.3.9,
-- RFC 5258 §3.4 \NonExistent).
CREATE TABLE subscriptions (
    account_id  BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
);
INSERT INTO subscriptions (account_id, name)
    SELECT account_id, name FROM mailboxes WHERE subscribed != 0;
ALTER TABLE mailboxes DROP COLUMN subscribed;
