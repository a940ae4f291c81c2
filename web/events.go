package web

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// hub tells open pages that something changed. Changes come from this
// server's own writes (bump) and from other writers of the database (ferry
// import in another process, carriers), which a watcher notices by
// polling SQLite's data_version on a connection of its own.
type hub struct {
	mu      sync.Mutex
	version uint64
	changed chan struct{} // closed and replaced at each change
	stop    chan struct{}
	stopped sync.WaitGroup
	once    sync.Once
}

func startHub(db *sql.DB, every time.Duration, log *slog.Logger) (*hub, error) {
	h := &hub{changed: make(chan struct{}), stop: make(chan struct{})}
	conn, err := db.Conn(context.Background())
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	h.stopped.Add(1)
	go h.watch(conn, every, log)
	return h, nil
}

// watch polls PRAGMA data_version, which changes when another connection
// commits, until the hub closes.
func (h *hub) watch(conn *sql.Conn, every time.Duration, log *slog.Logger) {
	defer h.stopped.Done()
	defer conn.Close()
	t := time.NewTicker(every)
	defer t.Stop()
	var last int64 = -1
	for {
		var v int64
		if err := conn.QueryRowContext(context.Background(), `PRAGMA data_version`).Scan(&v); err != nil {
			log.Warn("watching the database for changes", "err", err)
		} else if last >= 0 && v != last {
			h.bump()
		}
		last = v
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
	}
}

// bump announces a change.
func (h *hub) bump() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.version++
	close(h.changed)
	h.changed = make(chan struct{})
}

// next returns the current version and a channel closed at the next
// change.
func (h *hub) next() (uint64, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.version, h.changed
}

func (h *hub) close() { h.once.Do(func() { close(h.stop) }) }
func (h *hub) wait()  { h.stopped.Wait() }

// sseHeartbeat keeps idle streams open through proxies and tells the
// server early when a client went away.
const sseHeartbeat = 25 * time.Second

// events streams server-sent events to a logged-in page: "change" when
// anything changed, after which the page fetches itself again. Pages work
// without it; it only spares a reload.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 5000\n\n")
	if err := rc.Flush(); err != nil {
		return
	}
	beat := time.NewTicker(sseHeartbeat)
	defer beat.Stop()
	_, changed := s.hub.next()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.hub.stop:
			return
		case <-beat.C:
			// A session ended meanwhile (logout elsewhere, deactivation)
			// ends its stream.
			if sess, _, err := s.loadSession(r.Context(), r); sess == nil || err != nil {
				return
			}
			fmt.Fprint(w, ": ping\n\n")
		case <-changed:
			var v uint64
			v, changed = s.hub.next()
			fmt.Fprintf(w, "event: change\ndata: %d\n\n", v)
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}
