package node

import (
	"database/sql"
	"fmt"
)

// migrations are applied in order; the database's user_version counts how
// many have run. Append, never edit.
var migrations = []string{
	`CREATE TABLE meta (
		key   TEXT PRIMARY KEY,
		value TEXT NOT NULL
	);
	CREATE TABLE peers (
		id        BLOB PRIMARY KEY,        -- ed25519 key
		name      TEXT NOT NULL UNIQUE,
		recipient TEXT NOT NULL,           -- age1...
		card      TEXT NOT NULL,
		added_at  INTEGER NOT NULL,        -- unix ms
		last_seen INTEGER
	);
	CREATE TABLE users (
		name       TEXT PRIMARY KEY,
		created_at INTEGER NOT NULL
	);
	-- Every bundle this node has seen, made or taken in: the dedup key.
	-- state: outbound (made here, carried), carry (someone else's, carried),
	-- applied (for this node, applied), delivered (confirmed, body dropped),
	-- expired (body dropped).
	CREATE TABLE bundles (
		id          BLOB PRIMARY KEY,
		source      BLOB NOT NULL,
		seq         INTEGER NOT NULL,
		kind        INTEGER NOT NULL,
		priority    INTEGER NOT NULL,
		dest_type   INTEGER NOT NULL,
		dest        BLOB NOT NULL,
		created     INTEGER NOT NULL,      -- unix s
		expires     INTEGER NOT NULL,      -- unix s, 0 = never
		size        INTEGER NOT NULL,
		received_at INTEGER NOT NULL,      -- unix ms
		state       TEXT NOT NULL
	);
	CREATE INDEX bundles_state ON bundles (state, priority, created);
	CREATE INDEX bundles_source ON bundles (source, seq);
	-- Messages sent from and received at this node. (origin, seq) names a
	-- message across the network, so one message is stored once whatever
	-- carried it. Outgoing states: queued, carried, delivered, read, failed,
	-- expired. Incoming: received, read.
	CREATE TABLE messages (
		id           INTEGER PRIMARY KEY,
		origin       BLOB NOT NULL,
		seq          INTEGER NOT NULL,
		from_user    TEXT NOT NULL,
		to_node      BLOB NOT NULL,
		to_user      TEXT NOT NULL,
		room         INTEGER NOT NULL DEFAULT 0,
		reply_origin BLOB,
		reply_seq    INTEGER,
		body         TEXT NOT NULL,
		created      INTEGER NOT NULL,     -- unix ms, by the sender
		received_at  INTEGER,              -- unix ms, here
		bundle       BLOB,                 -- the bundle that carried it
		state        TEXT NOT NULL,
		state_at     INTEGER NOT NULL,     -- unix ms
		carrier      TEXT,
		reason       TEXT,
		UNIQUE (origin, seq)
	);
	CREATE INDEX messages_bundle ON messages (bundle);
	CREATE INDEX messages_outbox ON messages (to_node) WHERE bundle IS NULL AND state = 'queued';
	-- Receipts waiting to be sealed into a bundle for their destination.
	CREATE TABLE pending_receipts (
		id   INTEGER PRIMARY KEY,
		dest BLOB NOT NULL,
		body BLOB NOT NULL
	);
	-- Custody: which bundle was handed to which peer, how and when.
	CREATE TABLE handoffs (
		bundle  BLOB NOT NULL,
		peer    BLOB NOT NULL,
		carrier TEXT NOT NULL,
		at      INTEGER NOT NULL,          -- unix ms
		PRIMARY KEY (bundle, peer)
	);`,
}

func migrate(db *sql.DB) error {
	// One immediate transaction: two processes opening a new data
	// directory at once migrate it once.
	tx, err := db.Begin()
	if err != nil {
		return fmt.Errorf("node: migrate: %w", err)
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
		return fmt.Errorf("node: read schema version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("node: database schema %d is newer than this ferry (%d): upgrade ferry", v, len(migrations))
	}
	if v == len(migrations) {
		return nil
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.Exec(migrations[i]); err != nil {
			return fmt.Errorf("node: migrate to %d: %w", i+1, err)
		}
	}
	if _, err := tx.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, len(migrations))); err != nil {
		return fmt.Errorf("node: migrate: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("node: migrate: %w", err)
	}
	return nil
}
