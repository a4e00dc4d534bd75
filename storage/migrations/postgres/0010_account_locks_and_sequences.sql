-- Writes that scale with nodes (issue 18): every write transaction locks the accounts
-- it changes instead of one lock for all (storage/src/locks.rs), so ids can no longer
-- come from one id_sequences row that every writer updates. (0008 is unused on purpose.)
-- Invariants:
--  * message and mailbox ids come from sequences, which never go back: an id is never
--    handed out twice, also after the row with the largest id is deleted
--    (RFC 8474 §4.1 MAILBOXID; storage/src/cache.rs). Each starts past both the largest
--    id in its table and the last id id_sequences handed out.
--  * id_sequences stays, as a view of the sequences, for what reads it (`letterbox
--    migrate` copies it between backends; storage/src/migrate.rs sets the sequences
--    from it when PostgreSQL is the target).
--  * mailbox_messages.uid and the modseqs of a mailbox are handed out under its account's
--    advisory lock (storage/src/locks.rs), so in commit order across nodes.
--  * a message row goes when its last reference goes, also when two accounts drop
--    their references at the same time (see drop_unreferenced_message below).

CREATE SEQUENCE messages_id_seq AS BIGINT OWNED BY messages.id;
-- setval(..., false): the value given is the next one handed out (a sequence cannot be
-- set to 0 for an empty table).
SELECT setval('messages_id_seq', GREATEST(
    COALESCE((SELECT last_id FROM id_sequences WHERE name = 'messages'), 0),
    COALESCE((SELECT MAX(id) FROM messages), 0)) + 1, false);
ALTER TABLE messages ALTER COLUMN id SET DEFAULT nextval('messages_id_seq');

-- mailboxes.id is an identity column (0001); since 0006 its ids came from id_sequences.
SELECT setval(pg_get_serial_sequence('mailboxes', 'id'), GREATEST(
    COALESCE((SELECT last_id FROM id_sequences WHERE name = 'mailboxes'), 0),
    COALESCE((SELECT MAX(id) FROM mailboxes), 0),
    (SELECT last_value FROM mailboxes_id_seq)) + 1, false);

DROP TABLE id_sequences;
-- The last id handed out of each: last_value is the next one while is_called is false.
CREATE VIEW id_sequences (name, last_id) AS
    SELECT CAST('messages' AS TEXT),
           CASE WHEN is_called THEN last_value ELSE last_value - 1 END
    FROM messages_id_seq
    UNION ALL
    SELECT CAST('mailboxes' AS TEXT),
           CASE WHEN is_called THEN last_value ELSE last_value - 1 END
    FROM mailboxes_id_seq;

-- A message row lives while a mailbox entry or a queue item points at it. Without one
-- lock for all writers, two accounts (one message delivered to both) may drop their
-- last entries at the same time, each seeing the other's still there: the row would
-- stay for ever. So the row is locked first, and the check that follows (a statement of
-- its own, with a snapshot taken after the lock) sees the other's commit. FOR NO KEY
-- UPDATE waits for another such check, not for an entry being inserted that points at
-- the row (KEY SHARE), which cannot be the last reference going.
CREATE OR REPLACE FUNCTION drop_unreferenced_message() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM messages WHERE id = OLD.message_id FOR NO KEY UPDATE;
    DELETE FROM messages WHERE id = OLD.message_id
        AND NOT EXISTS (SELECT 1 FROM mailbox_messages WHERE message_id = OLD.message_id)
        AND NOT EXISTS (SELECT 1 FROM queue WHERE message_id = OLD.message_id);
    RETURN NULL;
END;
$$;
