-- RFC 8474 §4.1: a MAILBOXID is never given to another mailbox, and ours is made from
-- the mailbox's id. INTEGER PRIMARY KEY without AUTOINCREMENT gives a new row the
-- largest id plus one, so the id of the newest mailbox came back after its DELETE; from
-- now on mailbox ids come from id_sequences, as message ids do
-- (storage/src/id_sequence.rs).
INSERT INTO id_sequences (name, last_id) SELECT 'mailboxes', COALESCE(MAX(id), 0) FROM mailboxes;
