package carriers

import (
	"context"
	"fmt"

	"ferry/bundle"
	"ferry/node"
)

// Delivered bundles listed in a session's ROUTES: fewer on a narrow link.
const (
	routesDelivered       = 4096
	routesDeliveredNarrow = 64
)

// sendRoutes sends this node's routing summary (docs/routing.md): before
// the vector, so that the peer has it when it computes its first offer.
func (s *session) sendRoutes(ctx context.Context) error {
	k := routesDelivered
	if s.narrow() {
		k = routesDeliveredNarrow
	}
	b, err := s.n.SignedRoutes(ctx, k)
	if err != nil {
		return err
	}
	s.w.message(FrameRoutes, b)
	return nil
}

// onRoutes takes in the peer's routing summary: an encounter, its
// predictabilities, and the bundles it knows delivered.
func (s *session) onRoutes(ctx context.Context, m *message) error {
	r, err := node.ParseRoutes(m.body)
	if err != nil {
		return protocolError("routes: %v", err)
	}
	if r.Node != s.hi.id {
		return protocolError("routes signed by %s, not by the peer", r.Node.Short())
	}
	s.reach = r.P
	dropped, err := s.n.LearnRoutes(ctx, r)
	if err != nil {
		return fmt.Errorf("carriers: routes: %w", err)
	}
	s.rep.Settled += dropped
	return nil
}

func (s *session) narrow() bool {
	return node.Contact{Medium: s.info.Medium, Capacity: s.opts.MaxSend}.Narrow()
}

// route applies the routing policy (node.Plan) to an offer: the bundles it
// hands to this peer come first, in its order; those it keeps back are
// offered as withheld, so the peer neither takes nor forgets them.
func (s *session) route(ctx context.Context, items []offerItem) ([]offerItem, error) {
	var cands []node.BundleInfo
	byID := map[bundle.ID]offerItem{}
	for _, it := range items {
		if it.status != offerAvailable {
			continue
		}
		cands = append(cands, node.BundleInfo{ID: it.ID, Source: it.Source, Seq: it.Seq, Kind: it.Kind,
			Priority: it.Priority, Dest: it.Dest, Created: it.Created, Expires: it.Expires, Size: it.Size})
		byID[it.ID] = it
	}
	if len(cands) == 0 {
		return items, nil
	}
	plan, err := s.n.Plan(ctx, node.Contact{Peer: s.hi.id, Medium: s.info.Medium, Capacity: s.opts.MaxSend, Reach: s.reach}, cands)
	if err != nil {
		return nil, err
	}
	out := make([]offerItem, 0, len(items))
	for _, b := range plan {
		out = append(out, byID[b.ID])
		delete(byID, b.ID)
	}
	for _, it := range items {
		if it.status != offerAvailable {
			out = append(out, it)
		} else if _, kept := byID[it.ID]; kept {
			it.status = offerWithheld
			out = append(out, it)
		}
	}
	return out, nil
}
