package carriers

import (
	"sync"
	"time"

	"ferry/bundle"
)

// The sessions of one process coordinate in two ways, both keyed by the
// node's data directory:
//
//   - a bundle is received by one session at a time, since two would
//     write its partial file: a session that finds a bundle claimed waits
//     a moment for the claim (a session that just ended is letting go),
//     then leaves the bundle for its next contact;
//   - a new session with a peer ends an older one with the same peer that
//     has heard nothing for a while: its link is dead (cut without a
//     reset), and it holds claims the new one needs.
//
// Two processes on one data directory do not see each other: run one
// ferry serve per node.
var registry = struct {
	sync.Mutex
	claims   map[claimKey]bool
	sessions map[peerKey]map[*session]bool
}{claims: map[claimKey]bool{}, sessions: map[peerKey]map[*session]bool{}}

type claimKey struct {
	dir string
	ref seqRef
}

type peerKey struct {
	dir  string
	peer bundle.NodeID
}

// Coordination delays.
const (
	claimWait = 3 * time.Second // for a claim to be let go
	deadAfter = 2 * time.Second // of silence, for a session to count as dead when another starts
	endWait   = 5 * time.Second // for a dead session to end
)

// claim reserves a bundle for this session; it reports false if another
// session of the node keeps it.
func (s *session) claim(ref seqRef) bool {
	k := claimKey{s.n.Dir(), ref}
	deadline := time.Now().Add(claimWait)
	for {
		registry.Lock()
		if !registry.claims[k] {
			registry.claims[k] = true
			registry.Unlock()
			s.claimed = append(s.claimed, ref)
			return true
		}
		registry.Unlock()
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// releaseClaims ends the session's reservations.
func (s *session) releaseClaims() {
	registry.Lock()
	defer registry.Unlock()
	for _, ref := range s.claimed {
		delete(registry.claims, claimKey{s.n.Dir(), ref})
	}
	s.claimed = nil
}

// register records the session with its peer, first ending the sessions
// with the same peer that have gone silent.
func (s *session) register() {
	k := peerKey{s.n.Dir(), s.hi.id}
	registry.Lock()
	var dead []*session
	for o := range registry.sessions[k] {
		if time.Since(time.Unix(0, o.lastRecv.Load())) >= deadAfter {
			dead = append(dead, o)
		}
	}
	if registry.sessions[k] == nil {
		registry.sessions[k] = map[*session]bool{}
	}
	registry.sessions[k][s] = true
	registry.Unlock()
	for _, o := range dead {
		s.log.Info("ending a silent session with the same peer", "peer", s.rep.PeerName)
		o.link.Close()
		select {
		case <-o.ended:
		case <-time.After(endWait):
		}
	}
}

// unregister forgets the session.
func (s *session) unregister() {
	k := peerKey{s.n.Dir(), s.hi.id}
	registry.Lock()
	defer registry.Unlock()
	delete(registry.sessions[k], s)
	if len(registry.sessions[k]) == 0 {
		delete(registry.sessions, k)
	}
}
