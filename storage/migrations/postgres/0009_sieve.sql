-- Sieve scripts and vacation replies, as SQLite migration 0013.
CREATE TABLE sieve_scripts (
    account_id  BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    content     TEXT NOT NULL,
    active      BIGINT NOT NULL DEFAULT 0,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (account_id, name)
);
CREATE UNIQUE INDEX sieve_scripts_one_active ON sieve_scripts(account_id) WHERE active != 0;
CREATE TABLE sieve_vacation (
    account_id  BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    sender      TEXT NOT NULL,
    handle      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (account_id, sender, handle)
);
