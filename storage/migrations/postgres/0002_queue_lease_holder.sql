-- Who holds a queue item's lease (as SQLite migration 0007): the claiming node's name.
-- Only the holder renews a lease, and a node starting up takes back at once the items it
-- held when it died; other nodes' leases are left to run out.
ALTER TABLE queue ADD COLUMN lease_holder TEXT;
