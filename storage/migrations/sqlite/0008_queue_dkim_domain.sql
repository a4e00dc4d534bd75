-- The domain whose DKIM key signs a queued message, decided when the message was
-- submitted (the From: domain, when it is one of the submitting account's domains; our
-- host name for the notices the queue sends itself). NULL: sent unsigned. Items queued
-- before this column existed go out unsigned.
ALTER TABLE queue ADD COLUMN dkim_domain TEXT;
