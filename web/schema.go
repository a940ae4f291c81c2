package web

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"

	"ferry/node"
)

// migrations create the web inbox's own tables in the node's database.
// The meta row 'web_schema' counts how many have run. Append, never edit.
var migrations = []string{
	`CREATE TABLE web_accounts (
		user       TEXT PRIMARY KEY REFERENCES users(name),
		display    TEXT NOT NULL,
		role       TEXT NOT NULL CHECK (role IN ('admin', 'member')),
		pass       TEXT NOT NULL,          -- argon2id, PHC string
		active     INTEGER NOT NULL DEFAULT 1,
		quota      INTEGER,                -- bytes; NULL: the server's default
		created_at INTEGER NOT NULL        -- unix ms
	);
	-- Sessions by the SHA-256 of their cookie token.
	CREATE TABLE web_sessions (
		id         BLOB PRIMARY KEY,
		user       TEXT NOT NULL REFERENCES web_accounts(user) ON DELETE CASCADE,
		csrf       TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		seen_at    INTEGER NOT NULL,
		client     TEXT NOT NULL
	);
	CREATE INDEX web_sessions_user ON web_sessions (user);
	-- One-time codes by their SHA-256: invites (kind 'invite', role set),
	-- password resets (kind 'reset', user set), the setup code ('setup').
	CREATE TABLE web_codes (
		hash       BLOB PRIMARY KEY,
		kind       TEXT NOT NULL CHECK (kind IN ('setup', 'invite', 'reset')),
		role       TEXT,
		user       TEXT,
		created_by TEXT,
		created_at INTEGER NOT NULL,
		expires_at INTEGER NOT NULL,
		used_by    TEXT,
		used_at    INTEGER
	);`,
}

// migrate brings the web tables up to date, in one write transaction.
func migrate(ctx context.Context, n *node.Node) error {
	return n.Update(ctx, func(tx *sql.Tx) error {
		var s string
		err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'web_schema'`).Scan(&s)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("web: read schema version: %w", err)
		}
		v, _ := strconv.Atoi(s)
		if v > len(migrations) {
			return fmt.Errorf("web: database schema %d is newer than this ferry (%d): upgrade ferry", v, len(migrations))
		}
		for i := v; i < len(migrations); i++ {
			if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
				return fmt.Errorf("web: migrate to %d: %w", i+1, err)
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('web_schema', ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, strconv.Itoa(len(migrations)))
		return err
	})
}
