package node

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"sync"
)

// maxIdleConns is how many database connections stay open between uses.
const maxIdleConns = 8

// stmtCache keeps prepared statements of the queries that pages run most,
// so that SQLite compiles each once per connection rather than at every
// use. Only fixed query texts go in: a few dozen at most.
type stmtCache struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// prepared returns the prepared statement of q.
func (n *Node) prepared(ctx context.Context, q string) (*sql.Stmt, error) {
	n.stmts.mu.Lock()
	defer n.stmts.mu.Unlock()
	if st, ok := n.stmts.m[q]; ok {
		return st, nil
	}
	st, err := n.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if n.stmts.m == nil {
		n.stmts.m = map[string]*sql.Stmt{}
	}
	n.stmts.m[q] = st
	return st, nil
}

// query runs a frequent query through its prepared statement.
func (n *Node) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := n.prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// queryRow is query for one row.
func (n *Node) queryRow(ctx context.Context, q string, args ...any) (*sql.Row, error) {
	st, err := n.prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryRowContext(ctx, args...), nil
}

// withLightTx is withTx for writes that may be lost in a power cut
// without harm, such as read marks: the commit is not synced to disk
// (synchronous=NORMAL for this transaction only), so a page view does not
// wait for the disk. Later synced commits sync it too: the WAL is written
// in order.
func (n *Node) withLightTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	n.writeMu.Lock()
	defer n.writeMu.Unlock()
	conn, err := n.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	defer func() {
		if _, err := conn.ExecContext(context.Background(), `PRAGMA synchronous = FULL`); err != nil {
			// Never hand a connection that does not sync back to the pool.
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	return runTx(ctx, conn, fn)
}

// runTx runs fn in a transaction of db (a *sql.DB or *sql.Conn) and
// commits if fn returns nil.
func runTx(ctx context.Context, db interface {
	BeginTx(context.Context, *sql.TxOptions) (*sql.Tx, error)
}, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("node: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("node: commit: %w", err)
	}
	forgetVersion(ctx)
	return nil
}
