-- The domain whose DKIM key signs a queued message (as SQLite migration 0008), decided
-- when the message was submitted. NULL: sent unsigned.
ALTER TABLE queue ADD COLUMN dkim_domain TEXT;
