-- RFC 5464 METADATA: annotations ("entries") of a mailbox and of the server. Names are
-- stored lower-cased (RFC 5464 §3.2: "Entry names are case-insensitive"), with their
-- scope prefix (/private or /shared); values are octets (§5: value = nstring / literal8).
-- A mailbox's entries go with it when it is deleted and stay with it through a RENAME,
-- which keeps its id (§4.1: "Servers SHOULD ensure that mailbox annotations are
-- automatically moved when the mailbox is renamed", "Servers SHOULD delete annotations
-- for a mailbox when the mailbox is deleted").
CREATE TABLE mailbox_metadata (
    mailbox_id  INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    value       BLOB NOT NULL,
    PRIMARY KEY (mailbox_id, name)
);
-- Server annotations (mailbox name "") as one account sees them: letterbox has no
-- annotations shared between accounts, so /shared server entries are the account's too.
CREATE TABLE server_metadata (
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    value       BLOB NOT NULL,
    PRIMARY KEY (account_id, name)
);
