-- Addresses are looked up with lower(column) = lower(?), the form PostgreSQL needs too
-- (its TEXT has no NOCASE collation); these indexes serve that form here.
CREATE INDEX accounts_by_lower_email ON accounts(lower(email));
CREATE INDEX aliases_by_lower_address ON aliases(lower(address));
