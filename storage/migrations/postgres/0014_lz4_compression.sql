-- Values over about 2 KB are compressed when stored (TOAST). Each delivery writes three
-- such values (messages.raw, messages.body_text and the index's message_fulltext.body,
-- about 5 KB each for a common message), and PostgreSQL's default compressor, pglz,
-- was 5% of PostgreSQL's CPU on the SMTP path (perf over benches/smtp-nodes.sh, issue
-- 18). lz4 (PostgreSQL 14 and later, when built with it, as Debian's packages are)
-- compresses several times faster at a similar ratio and reads back faster too.
-- Only values written from now on use it; values already stored stay pglz, and both
-- read alike. A server built without lz4 keeps pglz: nothing changes there.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings
               WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        ALTER TABLE messages
            ALTER COLUMN raw SET COMPRESSION lz4,
            ALTER COLUMN body_text SET COMPRESSION lz4,
            ALTER COLUMN header SET COMPRESSION lz4;
        ALTER TABLE message_fulltext
            ALTER COLUMN body SET COMPRESSION lz4,
            ALTER COLUMN headers SET COMPRESSION lz4;
    END IF;
END
$$;
