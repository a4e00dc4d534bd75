-- SQLite: deliveries leave their full-text index row to the background indexer
-- (storage/src/fulltext/indexer.rs, issue 17). A message waiting for it is listed in
-- fulltext_pending with queued = 1, and is searched in full until it is indexed, like
-- every pending message. queued = 0 marks one the indexer cannot index (text over
-- MAX_INDEXED_TEXT_BYTES).
ALTER TABLE fulltext_pending ADD COLUMN queued INTEGER NOT NULL DEFAULT 0;
CREATE INDEX fulltext_pending_queued ON fulltext_pending (message_id) WHERE queued = 1;

-- Messages stored before the index (migration 0015) are indexed by the indexer too,
-- instead of waiting for `letterbox reindex`.
UPDATE fulltext_pending SET queued = 1
    WHERE message_id NOT IN (SELECT rowid FROM message_fulltext);
