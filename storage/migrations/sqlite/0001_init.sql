-- letterbox storage schema, SQLite backend.
-- Invariants:
--  * mailbox_messages.uid is strictly ascending per mailbox and never reused
--    within one uidvalidity: it is taken from mailboxes.uidnext, which only grows.
--  * every change to a mailbox entry bumps mailboxes.highestmodseq and stores
--    the new value in the entry's modseq (RFC 7162 §3.1).
--  * a message's raw bytes are stored once in messages, however many mailboxes hold it.

CREATE TABLE domains (
    id      INTEGER PRIMARY KEY,
    name    TEXT NOT NULL UNIQUE COLLATE NOCASE
);

CREATE TABLE accounts (
    id              INTEGER PRIMARY KEY,
    email           TEXT NOT NULL UNIQUE COLLATE NOCASE,
    domain_id       INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    password_hash   TEXT NOT NULL,
    quota_bytes     INTEGER,
    used_bytes      INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL
);

-- address is either `local@domain` or `@domain` (catch-all).
CREATE TABLE aliases (
    id          INTEGER PRIMARY KEY,
    address     TEXT NOT NULL UNIQUE COLLATE NOCASE,
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE
);

CREATE TABLE mailboxes (
    id              INTEGER PRIMARY KEY,
    account_id      INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    uidvalidity     INTEGER NOT NULL,
    uidnext         INTEGER NOT NULL DEFAULT 1,
    highestmodseq   INTEGER NOT NULL DEFAULT 1,
    subscribed      INTEGER NOT NULL DEFAULT 0,
    special_use     TEXT,
    UNIQUE (account_id, name)
);

CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    raw             BLOB NOT NULL,
    size            INTEGER NOT NULL,
    -- MessageMeta as JSON: MIME tree, ENVELOPE, decoded headers; computed at delivery.
    meta            TEXT NOT NULL,
    -- decoded text of every text part, for SEARCH BODY/TEXT.
    body_text       TEXT NOT NULL,
    sent_date       INTEGER,
    created_at      INTEGER NOT NULL
);

CREATE TABLE mailbox_messages (
    mailbox_id      INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid             INTEGER NOT NULL,
    message_id      INTEGER NOT NULL REFERENCES messages(id),
    modseq          INTEGER NOT NULL,
    flags           TEXT NOT NULL DEFAULT '',
    internal_date   INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX mailbox_messages_by_message ON mailbox_messages(message_id);
CREATE INDEX mailbox_messages_by_modseq ON mailbox_messages(mailbox_id, modseq);

-- Expunged UIDs with the modseq of their removal, for QRESYNC VANISHED (RFC 7162 §3.2.10).
CREATE TABLE expunged (
    mailbox_id  INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid         INTEGER NOT NULL,
    modseq      INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;

-- Messages waiting for remote delivery (filled by SMTP submission; sent by the outbound queue).
CREATE TABLE queue (
    id              INTEGER PRIMARY KEY,
    message_id      INTEGER NOT NULL REFERENCES messages(id),
    mail_from       TEXT NOT NULL,
    -- JSON: [{"address": ..., "orcpt": ..., "notify": ...}]
    recipients      TEXT NOT NULL,
    -- JSON: {"ret": ..., "envid": ...}
    dsn             TEXT NOT NULL DEFAULT '{}',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL
);

-- A message row lives while a mailbox entry or a queue item points at it.
CREATE TRIGGER drop_unreferenced_message_after_entry AFTER DELETE ON mailbox_messages
BEGIN
    DELETE FROM messages WHERE id = OLD.message_id
        AND NOT EXISTS (SELECT 1 FROM mailbox_messages WHERE message_id = OLD.message_id)
        AND NOT EXISTS (SELECT 1 FROM queue WHERE message_id = OLD.message_id);
END;
CREATE TRIGGER drop_unreferenced_message_after_queue AFTER DELETE ON queue
BEGIN
    DELETE FROM messages WHERE id = OLD.message_id
        AND NOT EXISTS (SELECT 1 FROM mailbox_messages WHERE message_id = OLD.message_id)
        AND NOT EXISTS (SELECT 1 FROM queue WHERE message_id = OLD.message_id);
END;
