-- The full-text index of SEARCH BODY and TEXT (storage/src/fulltext.rs, issue 18).
-- RFC 9051 §6.4.4 searches substrings: pg_trgm's GIN indexes answer LIKE '%...%' on
-- the folded text (folded before it is stored, by the same rule as the needle).
-- pg_trgm ships with PostgreSQL (Debian's postgresql-15) and is a trusted extension.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE message_fulltext (
    message_id BIGINT PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    body       TEXT NOT NULL,
    headers    TEXT NOT NULL
);
CREATE INDEX message_fulltext_body ON message_fulltext USING gin (body gin_trgm_ops);
CREATE INDEX message_fulltext_headers ON message_fulltext USING gin (headers gin_trgm_ops);

-- Messages without an index row: text over MAX_INDEXED_TEXT_BYTES, or stored before
-- the index (all of them, below, until `letterbox reindex`). SEARCH scans these.
CREATE TABLE fulltext_pending (
    message_id BIGINT PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE
);
INSERT INTO fulltext_pending (message_id) SELECT id FROM messages;

DROP FUNCTION letterbox_deliver(BYTEA, BYTEA, TEXT, TEXT, BIGINT, BIGINT, TEXT, TEXT, BIGINT);

-- letterbox_deliver of migration 0010, which also writes the message's full-text index
-- row (or marks it pending). One delivery in one round trip (storage/src/messages.rs,
-- deliver_in_one_statement):
-- the message stored once and placed in each mailbox of the comma-separated list at its
-- next UID with a new modseq, each account's quota charged; the save date is p_now
-- (RFC 8514 §3). All or nothing without a SAVEPOINT: a block with an EXCEPTION clause is
-- a subtransaction, so a refusal undoes what the call did and the writer's transaction
-- goes on with its other jobs. Returns one row per mailbox ('ok'), or one row naming the
-- refusal and the mailbox it came from. The caller holds the accounts' locks.
CREATE FUNCTION letterbox_deliver(
    p_raw BYTEA, p_header BYTEA, p_meta TEXT, p_body_text TEXT, p_sent_date BIGINT,
    p_now BIGINT, p_mailboxes TEXT, p_flags TEXT, p_internal_date BIGINT,
    p_fulltext_body TEXT, p_fulltext_headers TEXT)
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
        -- The full-text index row, or pending when the text is too large to index.
        IF p_fulltext_body IS NULL THEN
            INSERT INTO fulltext_pending (message_id) VALUES (v_message);
        ELSE
            INSERT INTO message_fulltext (message_id, body, headers)
                VALUES (v_message, p_fulltext_body, p_fulltext_headers);
        END IF;
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
