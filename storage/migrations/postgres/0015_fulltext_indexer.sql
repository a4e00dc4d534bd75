-- PostgreSQL: deliveries leave their full-text index row to the background indexer
-- (storage/src/fulltext/indexer.rs, issue 18), as SQLite's do since its migration 0017:
-- the GIN insertions of about 3,500 trigram keys per row were the largest part of the
-- CPU a delivery cost PostgreSQL. A message waiting for the indexer is listed in
-- fulltext_pending with queued = 1, and is searched in full until it is indexed, like
-- every pending message. queued = 0 marks one the indexer cannot index (text over
-- MAX_INDEXED_TEXT_BYTES). INTEGER, not BOOLEAN: the indexer's statements are the same
-- text on both backends.
ALTER TABLE fulltext_pending ADD COLUMN queued INTEGER NOT NULL DEFAULT 0;
CREATE INDEX fulltext_pending_queued ON fulltext_pending (message_id) WHERE queued = 1;

-- Messages stored before the index (migration 0012) are indexed by the indexer too,
-- instead of waiting for `letterbox reindex`; those over the limit are looked at once
-- more and set back to 0.
UPDATE fulltext_pending SET queued = 1
    WHERE message_id NOT IN (SELECT message_id FROM message_fulltext);

-- letterbox_deliver (migration 0012) is called with NULL index texts from now on
-- (storage/src/delivery/postgres.rs): its `INSERT INTO fulltext_pending (message_id)`
-- then lists the message for the indexer by this default. Every other writer of the
-- table names the column.
ALTER TABLE fulltext_pending ALTER COLUMN queued SET DEFAULT 1;
