-- RFC 8514 §3 save date: the moment a message was saved into this mailbox (delivery,
-- APPEND, the target of COPY or MOVE), in seconds since the epoch. Entries stored before
-- this migration keep NULL: their save date is unknown, and IMAP treats them as §4.2 and
-- §4.3 say for storage without the attribute (FETCH SAVEDATE is NIL, SAVED* searches use
-- the internal date).
ALTER TABLE mailbox_messages ADD COLUMN save_date INTEGER;
