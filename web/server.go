package web

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"

	"ferry/bundle"
	"ferry/carriers"
	"ferry/lora"
	"ferry/node"
	"ferry/usb"
)

// Options tune a Server. The zero value is ready to use.
type Options struct {
	// Logger receives the server's log; nil discards it.
	Logger *slog.Logger
	// MaxUpload bounds one uploaded file, in bytes; 0 means
	// DefaultMaxUpload.
	MaxUpload int64
	// MaxArchiveUpload bounds one proposal for the archive (files, a
	// folder, a .zip or .tar), in bytes; 0 means DefaultMaxArchiveUpload.
	MaxArchiveUpload int64
	// Quota bounds what each member stores (files and attachments), in
	// bytes, unless their account says otherwise; 0 means DefaultQuota.
	Quota int64
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// PollInterval is how often the server looks for changes made by
	// other processes (ferry import, a carrier) to push to open pages;
	// 0 means one second.
	PollInterval time.Duration
	// Links, if set, tells the network page what the live links did with
	// each peer (a *carriers.Stats).
	Links LinkStats
	// Sticks, if set, tells the network page about USB sticks (a
	// *usb.Monitor).
	Sticks StickStatus
	// Health is what the health page reports beyond the store (health.go).
	Health HealthOptions
	// Radios, if set, tell the network page about LoRa radios: signal,
	// airtime used against the budget, queue (each a *lora.Monitor).
	Radios []RadioStatus
}

// RadioStatus reports a LoRa radio carrier's status.
type RadioStatus interface {
	Status() lora.Status
}

// LinkStats reports the live links' record of a peer.
type LinkStats interface {
	Peer(id bundle.NodeID) (carriers.PeerStats, bool)
}

// StickStatus reports the USB stick being synced and the last sync.
type StickStatus interface {
	Status() usb.Status
}

// Defaults.
const (
	DefaultMaxUpload = 50 << 20
	// DefaultMaxArchiveUpload bounds a proposal's upload.
	DefaultMaxArchiveUpload = 512 << 20
	DefaultQuota            = 1 << 30
	// shutdownTimeout bounds how long Close waits for requests to finish.
	shutdownTimeout = 5 * time.Second
)

// Server is the web inbox of one node.
type Server struct {
	n       *node.Node
	db      *sql.DB
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	tmpl    *templates
	limiter *limiter
	hub     *hub
	gate    chan struct{}
	frags   *fragments
	names   atomic.Pointer[map[string]string] // display names, see displayNames
	handler http.Handler
	router  *mux.Router
	arch    archiveState
	// Statements every request runs, prepared once.
	sessionStmt, accountStmt *sql.Stmt

	http *http.Server
	ln   net.Listener
	done chan error
}

// New makes the web inbox of an open node, creating its tables in the
// node's database if needed. Close stops it; the node stays open.
func New(n *node.Node, opts Options) (*Server, error) {
	if opts.MaxUpload <= 0 {
		opts.MaxUpload = DefaultMaxUpload
	}
	if opts.MaxArchiveUpload <= 0 {
		opts.MaxArchiveUpload = DefaultMaxArchiveUpload
	}
	if opts.Quota <= 0 {
		opts.Quota = DefaultQuota
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	s := &Server{n: n, db: n.DB(), opts: opts, log: opts.Logger, now: opts.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.opts.Health.Started.IsZero() {
		s.opts.Health.Started = s.now()
	}
	if err := migrate(context.Background(), n); err != nil {
		return nil, err
	}
	t, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	s.tmpl = t
	if s.sessionStmt, err = s.db.Prepare(`SELECT user, csrf, seen_at FROM web_sessions WHERE id = ?`); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	if s.accountStmt, err = s.db.Prepare(`SELECT ` + accountCols + ` FROM web_accounts WHERE user = ?`); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	s.limiter = newLimiter(s.now)
	s.gate = make(chan struct{}, 2*runtime.GOMAXPROCS(0)+2)
	s.frags = newFragments(5000)
	s.hub, err = startHub(s.db, opts.PollInterval, s.log)
	if err != nil {
		return nil, err
	}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the inbox's HTTP handler, for tests and for serving it
// behind another server.
func (s *Server) Handler() http.Handler { return s.handler }

// Open listens on addr ("127.0.0.1:8080", ":80"): a listen error is
// returned at once. It then serves in the background until Close.
func (s *Server) Open(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("web: %w", err)
	}
	s.ln = ln
	s.http = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		// Uploads over a slow link take long: the body has its own bound
		// (MaxBytesReader), the headers have theirs.
		ReadTimeout: 30 * time.Minute,
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.http.RegisterOnShutdown(s.hub.close)
	s.done = make(chan error, 1)
	go func() {
		err := s.http.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return nil
}

// Addr returns the address Open listens on.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Close stops serving: it stops accepting, ends live update streams, and
// waits up to a few seconds for requests in progress.
func (s *Server) Close() error {
	var err error
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		err = s.http.Shutdown(ctx)
		if errors.Is(err, context.DeadlineExceeded) {
			err = errors.Join(err, s.http.Close())
		}
		err = errors.Join(err, <-s.done)
		s.http = nil
	}
	s.hub.close()
	s.hub.wait()
	s.arch.close()
	s.sessionStmt.Close()
	s.accountStmt.Close()
	return err
}
