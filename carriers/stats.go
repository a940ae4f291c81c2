package carriers

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"ferry/bundle"
)

// Stats keeps, per peer, what the live links of this process did: what a
// network page shows. It is safe for concurrent use; the zero value is
// ready to use. What waits for a peer is the node's to tell
// (node.PeerStatus.Waiting).
type Stats struct {
	mu    sync.Mutex
	peers map[bundle.NodeID]*PeerStats
}

// PeerStats is the record of one peer.
type PeerStats struct {
	Peer bundle.NodeID `json:"peer"`
	Name string        `json:"name"`
	// LastContact is the end of the last session that authenticated the
	// peer; LastAttempt the last try, successful or not.
	LastContact time.Time `json:"last_contact"`
	LastAttempt time.Time `json:"last_attempt"`
	Medium      string    `json:"medium"` // of the last contact: tcp, ble, lora...
	Remote      string    `json:"remote"`
	Sessions    int       `json:"sessions"`
	// BytesIn and BytesOut count every frame byte, over all sessions.
	BytesIn  int64 `json:"bytes_in"`
	BytesOut int64 `json:"bytes_out"`
	// DataIn and DataOut count the bundle bytes among them: a bundle cut
	// off and resumed counts each byte once.
	DataIn     int64 `json:"data_in"`
	DataOut    int64 `json:"data_out"`
	BundlesIn  int   `json:"bundles_in"`
	BundlesOut int   `json:"bundles_out"`
	// Left and LeftBytes are what the last session held back for quota.
	Left      int   `json:"left"`
	LeftBytes int64 `json:"left_bytes"`
	// LastError is why the last attempt failed; empty if it did not.
	LastError string `json:"last_error,omitempty"`
}

func (s *Stats) peer(id bundle.NodeID) *PeerStats {
	if s.peers == nil {
		s.peers = map[bundle.NodeID]*PeerStats{}
	}
	p := s.peers[id]
	if p == nil {
		p = &PeerStats{Peer: id, Name: id.Short()}
		s.peers[id] = p
	}
	return p
}

// record adds a session's report.
func (s *Stats) record(r *Report, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.peer(r.Peer)
	if r.PeerName != "" {
		p.Name = r.PeerName
	}
	p.LastAttempt = r.Finished
	p.Medium, p.Remote = r.Medium, r.Remote
	p.BytesIn += r.WireReceived
	p.BytesOut += r.WireSent
	p.DataIn += r.Received.Bytes
	p.DataOut += r.Sent.Bytes
	p.BundlesIn += r.Received.Bundles
	p.BundlesOut += r.Sent.Bundles
	p.Left, p.LeftBytes = r.Left, r.LeftBytes
	p.LastError = ""
	if err != nil {
		p.LastError = err.Error()
	}
	if err == nil || r.Reconcile.Mode != "" {
		p.LastContact = r.Finished
		p.Sessions++
	}
}

// failed records an attempt that did not reach the peer.
func (s *Stats) failed(id bundle.NodeID, name, remote string, at time.Time, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.peer(id)
	if name != "" {
		p.Name = name
	}
	p.LastAttempt, p.LastError = at, err.Error()
	if p.Remote == "" {
		p.Remote = remote
	}
}

// Peers returns the record of every peer seen, by name.
func (s *Stats) Peers() []PeerStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PeerStats, 0, len(s.peers))
	for _, p := range s.peers {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b PeerStats) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Peer returns the record of one peer.
func (s *Stats) Peer(id bundle.NodeID) (PeerStats, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.peers[id]
	if !ok {
		return PeerStats{}, false
	}
	return *p, true
}
