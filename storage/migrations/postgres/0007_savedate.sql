-- RFC 8514 §3 save date (as SQLite migration 0012): the moment a message was saved into
-- this mailbox, seconds since the epoch; NULL for entries stored before.
ALTER TABLE mailbox_messages ADD COLUMN save_date BIGINT;
