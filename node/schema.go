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
	// 2: community rooms, read marks, files and attachments stored by
	// content hash, and full-text search over messages.
	`-- A room message posted here is stored once for display (to_node is
	-- this node); for each peer community the room is shared with, a copy
	-- (copy_of = the display row) travels as a room message.
	ALTER TABLE messages ADD COLUMN copy_of INTEGER REFERENCES messages(id) ON DELETE CASCADE;
	CREATE INDEX messages_to ON messages (to_user, room, id);
	CREATE INDEX messages_from ON messages (from_user, origin);
	CREATE INDEX messages_copy ON messages (copy_of) WHERE copy_of IS NOT NULL;
	-- What rooms show: every room row but the copies travelling to peers.
	CREATE INDEX messages_room_view ON messages (to_user, id, origin) WHERE room = 1 AND copy_of IS NULL;
	CREATE TABLE rooms (
		id         INTEGER PRIMARY KEY,
		name       TEXT NOT NULL UNIQUE,   -- the name on the wire
		title      TEXT NOT NULL,
		topic      TEXT NOT NULL DEFAULT '',
		created_by TEXT NOT NULL,
		created_at INTEGER NOT NULL        -- unix ms
	);
	-- The peer communities a room is shared with.
	CREATE TABLE room_peers (
		room INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
		peer BLOB NOT NULL,
		PRIMARY KEY (room, peer)
	);
	-- How far each user has read each conversation: 'room:<name>' or
	-- 'dm:<node id, hex>:<user>'.
	CREATE TABLE reads (
		user    TEXT NOT NULL,
		conv    TEXT NOT NULL,
		last_id INTEGER NOT NULL,
		PRIMARY KEY (user, conv)
	);
	-- File bodies, by SHA-256, in files/<2 hex>/<hash>.
	CREATE TABLE blobs (
		hash       TEXT PRIMARY KEY,
		size       INTEGER NOT NULL,
		created_at INTEGER NOT NULL
	);
	-- Folders and files of a user's own storage (owner) or of the
	-- community's shared space (owner NULL).
	CREATE TABLE folders (
		id         INTEGER PRIMARY KEY,
		owner      TEXT,
		parent     INTEGER REFERENCES folders(id) ON DELETE CASCADE,
		name       TEXT NOT NULL,
		created_at INTEGER NOT NULL
	);
	CREATE UNIQUE INDEX folders_name ON folders (COALESCE(owner, ''), COALESCE(parent, 0), name);
	CREATE TABLE files (
		id          INTEGER PRIMARY KEY,
		owner       TEXT,
		folder      INTEGER REFERENCES folders(id) ON DELETE CASCADE,
		name        TEXT NOT NULL,
		hash        TEXT NOT NULL REFERENCES blobs(hash),
		size        INTEGER NOT NULL,
		type        TEXT NOT NULL,
		uploaded_by TEXT NOT NULL,
		created_at  INTEGER NOT NULL
	);
	CREATE UNIQUE INDEX files_name ON files (COALESCE(owner, ''), COALESCE(folder, 0), name);
	CREATE INDEX files_hash ON files (hash);
	CREATE INDEX files_uploader ON files (uploaded_by);
	CREATE TABLE attachments (
		id      INTEGER PRIMARY KEY,
		message INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
		name    TEXT NOT NULL,
		hash    TEXT NOT NULL REFERENCES blobs(hash),
		size    INTEGER NOT NULL,
		type    TEXT NOT NULL
	);
	CREATE INDEX attachments_message ON attachments (message);
	CREATE INDEX attachments_hash ON attachments (hash);
	-- Full-text index of message bodies, kept by triggers, so messages
	-- that arrive in bundles are indexed as they are applied.
	CREATE VIRTUAL TABLE messages_fts USING fts5(body, content='messages', content_rowid='id',
		tokenize='unicode61 remove_diacritics 2');
	INSERT INTO messages_fts (rowid, body) SELECT id, body FROM messages WHERE copy_of IS NULL;
	CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.copy_of IS NULL BEGIN
		INSERT INTO messages_fts (rowid, body) VALUES (new.id, new.body);
	END;
	CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.copy_of IS NULL BEGIN
		INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
	END;`,
	// 3: live-link sessions (package carriers): bundles known without
	// being held, and transfers cut off mid-way.
	`-- Bundles this node learned of from a peer and does not need (reason:
	-- declined, delivered, expired). They count in the node's version
	-- vector, so that two nodes that synced have equal vectors.
	CREATE TABLE known_bundles (
		source    BLOB NOT NULL,
		seq       INTEGER NOT NULL,
		dest_type INTEGER NOT NULL,
		dest      BLOB NOT NULL,
		expires   INTEGER NOT NULL,      -- unix s, 0 = never or unknown
		reason    TEXT NOT NULL,
		at        INTEGER NOT NULL,      -- unix ms
		PRIMARY KEY (source, seq)
	);
	-- Bundles received in part over a live link; the bytes are in
	-- spool/tmp/<id>.partial, the first 'have' of them durable.
	CREATE TABLE partials (
		id         BLOB PRIMARY KEY,
		source     BLOB NOT NULL,
		seq        INTEGER NOT NULL,
		size       INTEGER NOT NULL,
		have       INTEGER NOT NULL,
		expires    INTEGER NOT NULL,     -- unix s, 0 = never
		updated_at INTEGER NOT NULL      -- unix ms
	);
	CREATE INDEX partials_origin ON partials (source, seq);`,
	// The archive (package archive): signed snapshots, which chunks each
	// peer holds or was sent (bundle NULL: proven held), and the archive
	// bundles already answered with a receipt.
	`CREATE TABLE archive_manifests (
		item        BLOB NOT NULL,
		version     INTEGER NOT NULL,
		origin      BLOB NOT NULL,
		title       TEXT NOT NULL,
		created     INTEGER NOT NULL,    -- unix ms
		size        INTEGER NOT NULL,
		files       INTEGER NOT NULL,
		complete    INTEGER NOT NULL,    -- every chunk held and every file verified
		body        BLOB NOT NULL,       -- the signed manifest
		received_at INTEGER NOT NULL,    -- unix ms
		PRIMARY KEY (item, version, origin)
	);
	CREATE TABLE archive_peer_chunks (
		peer   BLOB NOT NULL,
		hash   BLOB NOT NULL,
		bundle BLOB,
		PRIMARY KEY (peer, hash)
	) WITHOUT ROWID;
	CREATE TABLE archive_received (bundle BLOB PRIMARY KEY) WITHOUT ROWID;`,
	// The archive's community practice (package archive, practice.go):
	// proposals with their signed snapshot, endorsements, the offers of
	// adopted items to peers; and the full-text index of the archive.
	`CREATE TABLE archive_proposals (
		id          INTEGER PRIMARY KEY,
		item        BLOB NOT NULL,
		version     INTEGER NOT NULL,
		title       TEXT NOT NULL,
		proposer    TEXT NOT NULL,
		proposed_at INTEGER NOT NULL,    -- unix ms
		body        BLOB NOT NULL,       -- the signed manifest
		state       TEXT NOT NULL CHECK (state IN ('open', 'adopted', 'withdrawn')),
		decided_by  TEXT,
		decided_at  INTEGER              -- unix ms
	);
	CREATE TABLE archive_endorsements (
		proposal INTEGER NOT NULL REFERENCES archive_proposals(id),
		user     TEXT NOT NULL,
		at       INTEGER NOT NULL,       -- unix ms
		PRIMARY KEY (proposal, user)
	);
	CREATE TABLE archive_offers (
		item    BLOB NOT NULL,
		version INTEGER NOT NULL,
		peer    BLOB NOT NULL,
		at      INTEGER NOT NULL,        -- unix ms
		bundles INTEGER NOT NULL,
		bytes   INTEGER NOT NULL,
		error   TEXT,
		PRIMARY KEY (item, version, peer)
	);
	CREATE VIRTUAL TABLE archive_text USING fts5(title, description, path, body,
		item UNINDEXED, version UNINDEXED, tokenize='unicode61 remove_diacritics 2');
	CREATE TABLE archive_indexed (
		item    BLOB NOT NULL,
		version INTEGER NOT NULL,
		origin  BLOB NOT NULL,
		PRIMARY KEY (item, version, origin)
	);`,
	// The network directory, from node announcements (docs/network.md),
	// and the contacts this node had with its peers, which its own
	// announcements report.
	`CREATE TABLE directory (
		node        BLOB PRIMARY KEY,    -- the announcer's ed25519 key
		name        TEXT NOT NULL,       -- the name on its card
		card        TEXT NOT NULL,
		issued      INTEGER NOT NULL,    -- unix s, of the announcement
		expires     INTEGER NOT NULL,    -- unix s, of its bundle; 0 never
		lat         INTEGER,             -- tenths of a degree; NULL: not given
		lon         INTEGER,
		carriers    TEXT NOT NULL,       -- comma-separated
		bundle      BLOB NOT NULL,       -- the announcement's bundle ID
		received_at INTEGER NOT NULL     -- unix ms
	) WITHOUT ROWID;
	CREATE TABLE directory_links (
		node    BLOB NOT NULL,           -- the announcer
		heard   BLOB NOT NULL,           -- a community it was in contact with
		name    TEXT NOT NULL,
		last    INTEGER NOT NULL,        -- unix s
		carrier TEXT NOT NULL,
		bytes   INTEGER NOT NULL,
		PRIMARY KEY (node, heard)
	) WITHOUT ROWID;
	CREATE INDEX directory_links_heard ON directory_links (heard);
	CREATE TABLE contacts (
		peer    BLOB NOT NULL,
		carrier TEXT NOT NULL,
		last    INTEGER NOT NULL,        -- unix ms
		bytes   INTEGER NOT NULL,        -- carried both ways, all contacts
		PRIMARY KEY (peer, carrier)
	) WITHOUT ROWID;`,
	// Routing (node/routing.go, docs/routing.md): delivery
	// predictabilities, copies of bulky bundles handed on, and the latest
	// routing summary taken in from each node.
	`CREATE TABLE route_predictability (
		node BLOB PRIMARY KEY,
		p    REAL NOT NULL,
		at   INTEGER NOT NULL          -- unix ms of the last update; aged from it
	) WITHOUT ROWID;
	CREATE TABLE route_copies (
		bundle BLOB PRIMARY KEY,
		given  INTEGER NOT NULL        -- copies handed to nodes other than the destination
	) WITHOUT ROWID;
	CREATE TABLE route_heard (
		node BLOB PRIMARY KEY,
		at   INTEGER NOT NULL          -- unix ms: the time of its latest summary taken in
	) WITHOUT ROWID;`,
	// File transfers (package transfer, docs/transfer.md): what came in,
	// filed where, part by part; and what this node sent, bundle by bundle.
	`CREATE TABLE transfers_in (
		id      BLOB PRIMARY KEY,            -- 16 bytes, the sender's
		source  BLOB NOT NULL,               -- the sending node
		name    TEXT NOT NULL,
		folder  TEXT NOT NULL UNIQUE,        -- under the received folder: sender/name
		note    TEXT NOT NULL,
		files   INTEGER NOT NULL,            -- totals the sender announced
		bytes   INTEGER NOT NULL,
		parts   INTEGER NOT NULL,
		first_at INTEGER NOT NULL,           -- unix ms
		last_at  INTEGER NOT NULL
	) WITHOUT ROWID;
	CREATE TABLE transfer_parts_in (
		transfer BLOB NOT NULL,
		bundle   BLOB NOT NULL,
		part     INTEGER NOT NULL,
		files    INTEGER NOT NULL,
		bytes    INTEGER NOT NULL,
		PRIMARY KEY (transfer, bundle)
	) WITHOUT ROWID;
	CREATE TABLE transfers_out (
		id      BLOB PRIMARY KEY,
		dest    BLOB NOT NULL,
		name    TEXT NOT NULL,
		files   INTEGER NOT NULL,
		bytes   INTEGER NOT NULL,
		parts   INTEGER NOT NULL,
		created INTEGER NOT NULL              -- unix ms
	) WITHOUT ROWID;
	CREATE TABLE transfer_bundles_out (
		transfer BLOB NOT NULL,
		bundle   BLOB NOT NULL,
		PRIMARY KEY (transfer, bundle)
	) WITHOUT ROWID;`,
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
