-- Outbound queue: a claim lease, so that an item being delivered is not picked up again.
-- One node today; with several nodes the claim (UPDATE ... WHERE lease expired) already
-- keeps two workers from sending the same item, and an owner column can be added later.
ALTER TABLE queue ADD COLUMN lease_until INTEGER;
CREATE INDEX queue_by_due ON queue(next_attempt_at);
