-- RFC 3461/3464 delay warnings: set once the sender was told its message is still waiting,
-- so that the warning goes out once per queued message.
ALTER TABLE queue ADD COLUMN delay_warned INTEGER NOT NULL DEFAULT 0;
