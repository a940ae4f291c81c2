package usb

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"ferry/bundle"
	"ferry/node"
)

// Routing summaries on a stick: FERRY/routes/<node id>.routes, each a
// node's signed summary (node.Routes: delivery predictabilities and the
// bundles it knows delivered), so that the nodes a stick links learn
// which carriers reach whom and drop what has arrived (docs/routing.md).
const (
	routesDir = "routes"
	routesExt = ".routes"
	// stickDelivered bounds the delivered bundles a node's summary on a
	// stick lists.
	stickDelivered = 8192
)

func (l layout) routes() string { return filepath.Join(l.root, routesDir) }

func (l layout) routesPath(id bundle.NodeID) string {
	return filepath.Join(l.routes(), id.String()+routesExt)
}

// readRoutes takes in the routing summaries of trusted nodes on the stick,
// and computes what the nodes the stick meets can reach.
func (s *syncer) readRoutes(ctx context.Context) error {
	self := s.n.ID()
	s.reach = map[bundle.NodeID]float64{}
	s.delivered = map[node.SeqRef]bool{}
	for id := range s.invs {
		if id != self {
			s.reach[id] = 1
		}
	}
	entries, err := os.ReadDir(s.l.routes())
	if err != nil {
		return nil // no summaries yet
	}
	for _, e := range entries {
		if e.IsDir() || isTemp(e.Name()) || !strings.HasSuffix(e.Name(), routesExt) {
			continue
		}
		p := filepath.Join(s.l.routes(), e.Name())
		ignore := func(reason string) {
			s.rep.Ignored = append(s.rep.Ignored, Issue{File: s.rel(p), Reason: reason})
		}
		b, err := readLimited(p, int64(node.MaxRoutesSize))
		if err != nil {
			ignore(err.Error())
			continue
		}
		r, err := node.ParseRoutes(b)
		if err != nil {
			ignore(err.Error())
			continue
		}
		if e.Name() != r.Node.String()+routesExt {
			ignore("file name does not match the node that signed it")
			continue
		}
		if r.Node == self {
			continue
		}
		if _, err := s.n.Peer(ctx, r.Node.String()); err != nil {
			ignore(fmt.Sprintf("signed by an unknown node %s", r.Node.Short()))
			continue
		}
		if _, err := s.n.LearnRoutes(ctx, r); err != nil {
			return err
		}
		s.reach[r.Node] = 1
		for d, pd := range r.P {
			if d != self && pd > s.reach[d] {
				s.reach[d] = pd
			}
		}
		if s.n.Routing().Mode == node.RouteEpidemicPlain {
			continue // plain epidemic routing: no delivered news
		}
		for _, d := range r.Delivered {
			s.delivered[d] = true
		}
	}
	return nil
}

// writeRoutes leaves the node's signed routing summary on the stick.
func (s *syncer) writeRoutes(ctx context.Context) error {
	b, err := s.n.SignedRoutes(ctx, stickDelivered)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.l.routes(), 0o755); err != nil {
		return fmt.Errorf("usb: %w", err)
	}
	if err := writeAtomic(s.l.routesPath(s.n.ID()), bytes.NewReader(b)); err != nil {
		if isNoSpace(err) {
			return nil // the summary is an optimisation: the next stick carries it
		}
		return err
	}
	return nil
}

// free returns the space left for bundles on the stick: its free space,
// or what Options.Capacity leaves, whichever is less; -1 if unknown.
func (s *syncer) free() int64 {
	f := freeSpace(s.l.root)
	if s.opts.Capacity > 0 {
		var used int64
		for _, sb := range s.onStick {
			used += sb.size
		}
		if c := s.opts.Capacity - used; f < 0 || c < f {
			f = max(c, 0)
		}
	}
	return f
}
