package usb

import (
	"context"
	"sync"
	"time"

	"ferry/node"
)

// Monitor syncs the sticks a Watcher finds and keeps what a status page
// shows: the sync under way and the last one's report.
type Monitor struct {
	n    *node.Node
	opts Options

	mu      sync.Mutex
	status  Status
	onEvent func()
}

// Status is a Monitor's view of the sticks.
type Status struct {
	Syncing  bool      `json:"syncing"`
	Stick    string    `json:"stick,omitempty"` // the stick being synced
	Progress Progress  `json:"progress"`        // of the sync under way
	Last     *Report   `json:"last,omitempty"`  // the last finished sync
	LastErr  string    `json:"last_error,omitempty"`
	LastAt   time.Time `json:"last_at,omitzero"`
}

// NewMonitor returns a monitor that syncs sticks with node n. onEvent, if
// not nil, is called whenever the status changes (for live pages).
func NewMonitor(n *node.Node, opts Options, onEvent func()) *Monitor {
	return &Monitor{n: n, opts: opts, onEvent: onEvent}
}

// Status returns a copy of the current status.
func (m *Monitor) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status
}

// Sync syncs the stick at root, recording progress and the report. It is
// the found callback for Watcher.Run.
func (m *Monitor) Sync(ctx context.Context, root string) (*Report, error) {
	m.update(func(s *Status) { s.Syncing, s.Stick, s.Progress = true, root, Progress{} })
	opts := m.opts
	user := opts.Progress
	var lastEvent time.Time
	opts.Progress = func(p Progress) {
		if user != nil {
			user(p)
		}
		m.mu.Lock()
		m.status.Progress = p
		m.mu.Unlock()
		if time.Since(lastEvent) > 500*time.Millisecond || p.Done == p.Total {
			lastEvent = time.Now()
			m.notify()
		}
	}
	rep, err := Sync(ctx, m.n, root, opts)
	m.update(func(s *Status) {
		s.Syncing, s.Last, s.LastAt, s.LastErr = false, rep, time.Now(), ""
		if err != nil {
			s.LastErr = err.Error()
		}
	})
	return rep, err
}

func (m *Monitor) update(fn func(*Status)) {
	m.mu.Lock()
	fn(&m.status)
	m.mu.Unlock()
	m.notify()
}

func (m *Monitor) notify() {
	if m.onEvent != nil {
		m.onEvent()
	}
}
