-- RFC 9051 §6.3.7-§6.3.9: the subscription list is a list of names, apart from the
-- mailboxes themselves. A name stays subscribed when its mailbox is deleted or renamed
-- ("the server MUST NOT unilaterally remove an existing mailbox name from the
-- subscription list even if a mailbox by that name no longer exists"), so LIST
-- (SUBSCRIBED) can show it as \NonExistent (RFC 5258 §3.4), as Dovecot does.
CREATE TABLE subscriptions (
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
);
INSERT INTO subscriptions (account_id, name)
    SELECT account_id, name FROM mailboxes WHERE subscribed != 0;
ALTER TABLE mailboxes DROP COLUMN subscribed;
