-- Sieve (RFC 5228) scripts per account, managed through ManageSieve (RFC 5804) and the
-- admin CLI; at most one is active (RFC 5804 §1.2: "at most one script active").
CREATE TABLE sieve_scripts (
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    content     TEXT NOT NULL,
    active      INTEGER NOT NULL DEFAULT 0,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (account_id, name)
);
CREATE UNIQUE INDEX sieve_scripts_one_active ON sieve_scripts(account_id) WHERE active != 0;
-- RFC 5230 §4.2 / §4.7: whom vacation answered, and until when it stays quiet
-- (`:days`); `handle` is the reply's handle (or a digest of its reason), `sender` the
-- envelope sender in lower case.
CREATE TABLE sieve_vacation (
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    sender      TEXT NOT NULL,
    handle      TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (account_id, sender, handle)
);
