-- RFC 8474 §4.1 MAILBOXID is made from the mailbox's id, which must never name another
-- mailbox: mailbox ids come from id_sequences, as message ids do
-- (storage/src/id_sequence.rs; as SQLite migration 0011). The identity column's
-- sequence never went back, so the sequence starts past its last value too.
INSERT INTO id_sequences (name, last_id)
    SELECT 'mailboxes', GREATEST(COALESCE(MAX(id), 0), (SELECT last_value FROM mailboxes_id_seq))
    FROM mailboxes;
