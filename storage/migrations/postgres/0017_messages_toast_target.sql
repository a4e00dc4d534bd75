-- A common message's row stays whole in its page instead of sending a value to the TOAST
-- table (issue 18). PostgreSQL shrinks a row over about 2 KB: it compresses its largest
-- values one after the other until the row fits in toast_tuple_target (2032 bytes by
-- default), then moves the largest out to the TOAST table, one more heap row and index
-- entry to write (and their WAL) for every delivery. A 5 KB text message's row is about
-- 2.7 KB once compressed (raw 0.7 KB, meta 1.2 KB, header 0.6 KB): its meta went to the
-- TOAST table, 4% of the writers' CPU in a perf profile of benches/smtp-nodes.sh. With a
-- target of 4096 bytes such rows stay in the heap page, whole (two or three to a page);
-- larger messages are compressed and moved out as before. Rows written from now on.
ALTER TABLE messages SET (toast_tuple_target = 4096);
