package web

import (
	"encoding/json"
	"net/http"
	"runtime"
	"slices"
	"time"

	"ferry/node"
)

// The health of the node, for its admins (/admin/health, and the same as
// JSON at /admin/health.json) and for monitoring (/healthz: ok or
// degraded, and nothing else, to anyone).

// HealthOptions is what the health page reports beyond the store.
type HealthOptions struct {
	// Version is the binary's version line.
	Version string
	// Started is when the process started; zero means when New ran.
	Started time.Time
	// Status sets the disk alarm's thresholds.
	Status node.StatusOptions
}

// Health is the health page's data.
type Health struct {
	Status  string    `json:"status"` // "ok", or "degraded" while the disk alarm is on
	Version string    `json:"version"`
	Started time.Time `json:"started"`
	Uptime  string    `json:"uptime"`
	// Memory of this process, as the Go runtime sees it.
	HeapBytes int64 `json:"heap_bytes"`
	SysBytes  int64 `json:"sys_bytes"`
	*node.StoreStatus
	// Contacts is the last contact per carrier: handoffs of bundles
	// recorded in the store (usb, file, tcp...) and, for live links,
	// the last session with any peer.
	Contacts []Contact `json:"contacts"`
}

// Contact is the last contact by one carrier.
type Contact struct {
	Carrier string    `json:"carrier"`
	Last    time.Time `json:"last"`
	What    string    `json:"what"` // "handoff" or "session"
}

func (s *Server) health(r *http.Request, walk bool) (*Health, error) {
	opts := s.opts.Health.Status
	opts.SkipWalk = !walk
	st, err := s.n.StoreStatus(r.Context(), opts)
	if err != nil {
		return nil, err
	}
	h := &Health{Status: "ok", Version: s.opts.Health.Version, Started: s.opts.Health.Started,
		Uptime: node.DurationText(s.now().Sub(s.opts.Health.Started)), StoreStatus: st}
	if st.Disk.Alarm != "" {
		h.Status = "degraded"
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h.HeapBytes, h.SysBytes = int64(ms.HeapInuse), int64(ms.Sys)
	for _, c := range st.Carriers {
		h.Contacts = append(h.Contacts, Contact{Carrier: c.Carrier, Last: c.Last, What: "handoff"})
	}
	if s.opts.Links != nil {
		peers, err := s.n.Peers(r.Context())
		if err != nil {
			return nil, err
		}
		last := map[string]time.Time{}
		for _, p := range peers {
			if ls, ok := s.opts.Links.Peer(p.ID); ok && !ls.LastContact.IsZero() && ls.LastContact.After(last[ls.Medium]) {
				last[ls.Medium] = ls.LastContact
			}
		}
		for m, t := range last {
			h.Contacts = append(h.Contacts, Contact{Carrier: m, Last: t, What: "session"})
		}
	}
	slices.SortFunc(h.Contacts, func(a, b Contact) int { return b.Last.Compare(a.Last) })
	return h, nil
}

func (s *Server) healthPage(w http.ResponseWriter, r *http.Request) error {
	h, err := s.health(r, true)
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, "health", "Health", h)
	return nil
}

func (s *Server) healthJSON(w http.ResponseWriter, r *http.Request) error {
	h, err := s.health(r, true)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, h)
}

// healthz answers monitoring: {"status":"ok"} with 200, or
// {"status":"degraded"} with 503 while the disk alarm is on. It reads only
// the free space, so polling it costs little, and it tells nothing else.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	h, err := s.health(r, false)
	status, code := "ok", http.StatusOK
	switch {
	case err != nil:
		s.log.Error("health check", "err", err)
		status, code = "failing", http.StatusServiceUnavailable
	case h.Status != "ok":
		status, code = h.Status, http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]string{"status": status})
}

func writeJSON(w http.ResponseWriter, code int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
