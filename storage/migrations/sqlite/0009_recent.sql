-- RFC 3501 §2.3.2 \Recent: the first UID of the mailbox that no session has yet been told
-- of as \Recent. A read-write IMAP4rev1 session that sees messages at or past it claims
-- them (and moves it past them), so each message is recent in exactly one session.
-- Messages already stored are taken as seen by an earlier session.
ALTER TABLE mailboxes ADD COLUMN first_recent_uid INTEGER NOT NULL DEFAULT 1;
UPDATE mailboxes SET first_recent_uid = uidnext;
