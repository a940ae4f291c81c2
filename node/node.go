package node

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"

	"ferry/bundle"
)

// ErrNotInitialized means the data directory holds no node.
var ErrNotInitialized = errors.New("node: data directory is not initialized (run ferry init)")

// Options tune a node. The zero value is ready to use.
type Options struct {
	// Logger receives the node's log; nil discards it.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Limits bound the bundles the node accepts; zero fields take
	// bundle.DefaultLimits.
	Limits bundle.Limits
	// MessageTTL is how long a message bundle may travel before it
	// expires; zero means DefaultMessageTTL.
	MessageTTL time.Duration
}

// DefaultMessageTTL is how long message bundles travel by default: long
// enough for a stick to cross a region on foot.
const DefaultMessageTTL = 90 * 24 * time.Hour

// Node is an open ferry node.
type Node struct {
	dir   string
	id    *Identity
	name  string
	db    *sql.DB
	spool spool
	log   *slog.Logger
	now   func() time.Time
	lim   bundle.Limits
	ttl   time.Duration

	// writeMu serializes write transactions and spool sequencing in this
	// process; SQLite serializes them across processes.
	writeMu sync.Mutex
	// stmts keeps the prepared statements of frequent queries.
	stmts stmtCache
	// reads holds read marks not yet written.
	reads readMarks
	// watch tells when the database changed, and roomCache keeps the rooms
	// until it does (node/roomcache.go).
	watch     watch
	roomCache roomCache
	roomPages roomPages
	// routing is the routing policy (node/routing.go).
	routeMu sync.Mutex
	routing Routing
}

// Init creates a node named name in dir, which must be empty or absent.
func Init(dir, name string, opts Options) (*Node, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("node: bad name %q: use 1-32 lowercase letters, digits and dashes", name)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, keyFile)); err == nil {
		return nil, fmt.Errorf("node: %s already holds a node", dir)
	}
	id, err := GenerateIdentity()
	if err != nil {
		return nil, err
	}
	if err := id.save(dir); err != nil {
		return nil, err
	}
	db, err := openDB(dir)
	if err != nil {
		return nil, err
	}
	if _, err := db.Exec(`INSERT INTO meta(key, value) VALUES ('name', ?)`, name); err != nil {
		db.Close()
		return nil, fmt.Errorf("node: %w", err)
	}
	db.Close()
	return Open(dir, opts)
}

// Open opens the node in dir.
func Open(dir string, opts Options) (*Node, error) {
	if _, err := os.Stat(filepath.Join(dir, keyFile)); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotInitialized, dir)
	}
	id, err := loadIdentity(dir)
	if err != nil {
		return nil, err
	}
	db, err := openDB(dir)
	if err != nil {
		return nil, err
	}
	n := &Node{
		dir:   dir,
		id:    id,
		db:    db,
		spool: spool{dir: filepath.Join(dir, spoolDir)},
		log:   opts.Logger,
		now:   opts.Now,
		lim:   opts.Limits,
		ttl:   opts.MessageTTL,
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	if n.now == nil {
		n.now = time.Now
	}
	if n.ttl == 0 {
		n.ttl = DefaultMessageTTL
	}
	if err := db.QueryRow(`SELECT value FROM meta WHERE key = 'name'`).Scan(&n.name); err != nil {
		db.Close()
		return nil, fmt.Errorf("node: read name: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(n.spool.dir, "tmp"), 0o700); err != nil {
		db.Close()
		return nil, fmt.Errorf("node: %w", err)
	}
	if err := n.sweep(context.Background()); err != nil {
		n.log.Warn("sweeping the spool", "err", err)
	}
	return n, nil
}

// Close closes the node's database.
func (n *Node) Close() error { return errors.Join(n.closeReads(), n.closeWatch(), n.db.Close()) }

// ID returns the node's ID.
func (n *Node) ID() bundle.NodeID { return n.id.ID() }

// Name returns the node's name.
func (n *Node) Name() string { return n.name }

// Dir returns the node's data directory.
func (n *Node) Dir() string { return n.dir }

// Identity returns the node's secret keys.
func (n *Node) Identity() *Identity { return n.id }

// DB returns the node's database, for packages that keep their own tables
// in it (the web inbox).
func (n *Node) DB() *sql.DB { return n.db }

// Card returns the node's signed card.
func (n *Node) Card(loc *Location, addrs []string) (string, error) {
	return SignCard(&Card{
		Name:      n.name,
		ID:        n.ID(),
		Recipient: n.id.Age.Recipient().String(),
		Location:  loc,
		Addrs:     addrs,
		Issued:    n.now(),
	}, n.id.Sign)
}

func openDB(dir string) (*sql.DB, error) {
	q := url.Values{}
	// busy_timeout first: the pragmas run in order, and journal_mode on a
	// database another process is opening must wait, not fail at once.
	for _, p := range []string{"busy_timeout(30000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)", "temp_store(MEMORY)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	dsn := "file:" + filepath.Join(dir, dbFile) + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("node: open database: %w", err)
	}
	// Keep connections: a new SQLite connection reads the whole schema
	// before its first statement, and a web page runs a dozen.
	db.SetMaxIdleConns(maxIdleConns)
	if err := migrate(db); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// withTx runs fn in a write transaction, serialized with the node's other
// writers, and commits if fn returns nil.
func (n *Node) withTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	n.writeMu.Lock()
	defer n.writeMu.Unlock()
	return n.withTxLocked(ctx, fn)
}

func (n *Node) withTxLocked(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return runTx(ctx, n.db, fn)
}

// sweep removes spool debris: old temporary files and bodies of bundles
// the store no longer holds for carrying. Partial transfers it records
// stay (spool/tmp/<id>.partial).
func (n *Node) sweep(ctx context.Context) error {
	held := map[bundle.ID]bool{}
	rows, err := n.db.QueryContext(ctx, `SELECT id FROM bundles WHERE state IN ('outbound', 'carry')`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			rows.Close()
			return err
		}
		held[bundle.ID(b)] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	partial, err := n.Partials(ctx)
	if err != nil {
		return err
	}
	for _, p := range partial {
		held[p.ID] = true
	}
	return n.spool.sweep(n.now(), func(id bundle.ID) bool { return held[id] })
}
