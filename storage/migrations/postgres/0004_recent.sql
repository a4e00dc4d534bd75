-- RFC 3501 §2.3.2 \Recent (as SQLite migration 0009): the first UID of the mailbox that no
-- session has yet been told of as \Recent; messages already stored are taken as seen.
ALTER TABLE mailboxes ADD COLUMN first_recent_uid BIGINT NOT NULL DEFAULT 1;
UPDATE mailboxes SET first_recent_uid = uidnext;
