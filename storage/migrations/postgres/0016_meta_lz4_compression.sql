-- messages.meta (the MessageMeta JSON computed at delivery) is about 2.9 KB for a common
-- 5 KB message, over the ~2 KB at which values are compressed when stored (TOAST), and
-- was still compressed with pglz: `pglz_compress` was PostgreSQL's top entry (2.2% of the
-- machine's CPU, about 4% of PostgreSQL's) in a perf profile of benches/smtp-nodes.sh
-- once the full-text index had left the delivery (issue 18). lz4, as migration 0014 set
-- for the other large columns, compresses it several times faster. Only values written
-- from now on use it; both read alike. A server built without lz4 keeps pglz.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings
               WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        ALTER TABLE messages ALTER COLUMN meta SET COMPRESSION lz4;
    END IF;
END
$$;
