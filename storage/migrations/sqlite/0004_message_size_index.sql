-- The size of a message without its row: SELECT, QRESYNC changes and EXPUNGE list entries
-- with m.size, and size comes after raw in the row, so reading it walked the overflow pages
-- of every message. The queries name this index (INDEXED BY) and read it alone.
CREATE INDEX messages_size ON messages(id, size);
