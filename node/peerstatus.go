package node

import (
	"context"
	"time"
)

// PeerStatus is how this node stands with a peer community: when it last
// handed the peer something and by which carrier, when it last took in
// something the peer made, and what waits for the next contact.
type PeerStatus struct {
	Peer
	LastOut time.Time // the last handoff of a bundle towards the peer
	Carrier string    // the carrier of that handoff: file, usb, tcp...
	LastIn  time.Time // the last bundle from the peer taken in here
	Waiting int       // messages to the peer not yet carried
}

// PeerStatuses lists the peers with their status, by name.
func (n *Node) PeerStatuses(ctx context.Context) ([]PeerStatus, error) {
	peers, err := n.Peers(ctx)
	if err != nil {
		return nil, err
	}
	self := n.ID()
	out := make([]PeerStatus, len(peers))
	for i, p := range peers {
		st := PeerStatus{Peer: p}
		var lastOut, lastIn int64
		err := n.db.QueryRowContext(ctx, `SELECT
			COALESCE((SELECT at FROM handoffs WHERE peer = ?1 ORDER BY at DESC LIMIT 1), 0),
			COALESCE((SELECT carrier FROM handoffs WHERE peer = ?1 ORDER BY at DESC LIMIT 1), ''),
			COALESCE((SELECT MAX(received_at) FROM bundles WHERE source = ?1), 0),
			(SELECT COUNT(*) FROM messages WHERE origin = ?2 AND to_node = ?1 AND state = 'queued')`,
			p.ID[:], self[:]).Scan(&lastOut, &st.Carrier, &lastIn, &st.Waiting)
		if err != nil {
			return nil, err
		}
		if lastOut != 0 {
			st.LastOut = timeMilli(lastOut)
		}
		if lastIn != 0 {
			st.LastIn = timeMilli(lastIn)
		}
		out[i] = st
	}
	return out, nil
}
