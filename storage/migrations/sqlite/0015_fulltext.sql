-- The full-text index of SEARCH BODY and TEXT (storage/src/fulltext.rs, issue 18).
-- RFC 9051 §6.4.4 searches substrings: FTS5's trigram tokenizer answers a phrase query
-- as a substring match. The text is folded before it is stored (by the same rule as
-- the needle), so the tokenizer folds nothing itself. Keyed by the message's id (rowid).
CREATE VIRTUAL TABLE message_fulltext USING fts5(
    body, headers, tokenize = 'trigram case_sensitive 1'
);

-- Messages without an index row: text over MAX_INDEXED_TEXT_BYTES, or stored before
-- the index (all of them, below, until `letterbox reindex`). SEARCH scans these.
CREATE TABLE fulltext_pending (
    message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE
);
INSERT INTO fulltext_pending (message_id) SELECT id FROM messages;

-- The index row goes with its message (an FTS5 table has no foreign keys).
CREATE TRIGGER drop_fulltext_of_message AFTER DELETE ON messages
BEGIN
    DELETE FROM message_fulltext WHERE rowid = OLD.id;
END;
