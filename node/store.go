package node

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrUserExists means a user of that name exists already.
var ErrUserExists = errors.New("node: user already exists")

// Update runs fn in a write transaction of the node's database, serialized
// with the node's own writers, and commits if fn returns nil. Packages
// that keep their own tables in the database (the web inbox) write
// through it.
func (n *Node) Update(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return n.withTx(ctx, fn)
}

// AddUserWith creates a user of this node and runs also in the same
// transaction, so that what a package keeps about the user (an account)
// exists exactly when the user does.
func (n *Node) AddUserWith(ctx context.Context, name string, also func(tx *sql.Tx) error) error {
	if !ValidUser(name) {
		return fmt.Errorf("node: bad user name %q: use 1-32 lowercase letters, digits, '.', '_' and '-'", name)
	}
	return n.withTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO users (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING`, name, n.now().UnixMilli())
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k == 0 {
			return fmt.Errorf("%w: %q", ErrUserExists, name)
		}
		return also(tx)
	})
}
