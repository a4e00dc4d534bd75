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

-- One delivery in one round trip (storage/src/messages.rs, deliver_in_one_statement):
-- the message stored once and placed in each mailbox of the comma-separated list at its
-- next UID with a new modseq, each account's quota charged; the save date is p_now
-- (RFC 8514 §3). All or nothing without a SAVEPOINT: a block with an EXCEPTION clause is
-- a subtransaction, so a refusal undoes what the call did and the writer's transaction
-- goes on with its other jobs. Returns one row per mailbox ('ok'), or one row naming the
-- refusal and the mailbox it came from. The caller holds the accounts' locks.
CREATE FUNCTION letterbox_deliver(
    p_raw BYTEA, p_header BYTEA, p_meta TEXT, p_body_text TEXT, p_sent_date BIGINT,
    p_now BIGINT, p_mailboxes TEXT, p_flags TEXT, p_internal_date BIGINT)
RETURNS TABLE (r_outcome TEXT, r_message BIGINT, r_mailbox BIGINT, r_account BIGINT,
               r_uidvalidity BIGINT, r_uid BIGINT, r_modseq BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    v_size BIGINT := octet_length(p_raw);
    v_outcome TEXT := 'ok';
    v_message BIGINT;
    v_mailbox BIGINT;
    v_account BIGINT;
    v_uidvalidity BIGINT;
    v_uid BIGINT;
    v_modseq BIGINT;
    v_mailboxes BIGINT[] := '{}';
    v_accounts BIGINT[] := '{}';
    v_uidvalidities BIGINT[] := '{}';
    v_uids BIGINT[] := '{}';
    v_modseqs BIGINT[] := '{}';
BEGIN
    BEGIN
        INSERT INTO messages (raw, header, size, meta, body_text, sent_date, created_at)
            VALUES (p_raw, p_header, v_size, p_meta, p_body_text, p_sent_date, p_now)
            RETURNING id INTO v_message;
        FOREACH v_mailbox IN ARRAY CAST(string_to_array(p_mailboxes, ',') AS BIGINT[]) LOOP
            UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
                WHERE id = v_mailbox
                RETURNING account_id, uidvalidity, uidnext - 1, highestmodseq
                INTO v_account, v_uidvalidity, v_uid, v_modseq;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'no mailbox %', v_mailbox USING ERRCODE = 'LB404';
            END IF;
            -- RFC 9051 §2.3.1.1: UIDs are 32-bit, and UIDNEXT must stay one.
            IF v_uid >= 4294967295 THEN
                RAISE EXCEPTION 'UID space of mailbox % exhausted', v_mailbox USING ERRCODE = 'LB409';
            END IF;
            UPDATE accounts SET used_bytes = used_bytes + v_size
                WHERE id = v_account AND (quota_bytes IS NULL OR used_bytes + v_size <= quota_bytes);
            IF NOT FOUND THEN
                RAISE EXCEPTION 'account % over quota', v_account USING ERRCODE = 'LB507';
            END IF;
            INSERT INTO mailbox_messages
                (mailbox_id, uid, message_id, modseq, flags, internal_date, save_date)
                VALUES (v_mailbox, v_uid, v_message, v_modseq, p_flags, p_internal_date, p_now);
            v_mailboxes := v_mailboxes || v_mailbox;
            v_accounts := v_accounts || v_account;
            v_uidvalidities := v_uidvalidities || v_uidvalidity;
            v_uids := v_uids || v_uid;
            v_modseqs := v_modseqs || v_modseq;
        END LOOP;
    EXCEPTION
        -- Variables keep their values; what the block wrote is undone.
        WHEN SQLSTATE 'LB404' THEN v_outcome := 'no mailbox';
        WHEN SQLSTATE 'LB409' THEN v_outcome := 'uid space exhausted';
        WHEN SQLSTATE 'LB507' THEN v_outcome := 'over quota';
    END;
    IF v_outcome <> 'ok' THEN
        RETURN QUERY SELECT v_outcome, CAST(NULL AS BIGINT), v_mailbox, CAST(NULL AS BIGINT),
            CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), CAST(NULL AS BIGINT);
        RETURN;
    END IF;
    RETURN QUERY SELECT v_outcome, v_message, placed.m, placed.a, placed.v, placed.u, placed.s
        FROM unnest(v_mailboxes, v_accounts, v_uidvalidities, v_uids, v_modseqs)
             WITH ORDINALITY AS placed(m, a, v, u, s, n)
        ORDER BY placed.n;
END;
$$;
