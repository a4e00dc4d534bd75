-- What reads of a message's header need, and message ids that are never reused.
--
-- messages.header: the top-level header section exactly as stored in raw (raw[..body_start],
-- with the blank line that ends it when there is one), written at delivery. FETCH of header
-- sections and the in-memory message cache read it instead of the whole message.
ALTER TABLE messages ADD COLUMN header BLOB NOT NULL DEFAULT x'';
-- Rows stored before this migration: the split point is the root part's body_start in
-- the meta computed at delivery; substr on a BLOB counts bytes.
UPDATE messages
    SET header = substr(raw, 1, COALESCE(json_extract(meta, '$.root.body_start'), length(raw)));

-- The last id handed out per table. An INTEGER PRIMARY KEY without AUTOINCREMENT takes
-- MAX(id) + 1, so deleting the newest message (here or from the admin CLI, another process)
-- would give its id to the next one; a message id is cached in memory as immutable, so ids
-- are taken from here instead, in the delivery's own transaction: they only grow.
CREATE TABLE id_sequences (
    name    TEXT PRIMARY KEY,
    last_id INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO id_sequences (name, last_id) SELECT 'messages', COALESCE(MAX(id), 0) FROM messages;
