package sim

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"ferry/bundle"
	"ferry/carriers"
	"ferry/node"
	"ferry/usb"
)

// User is the one user of every simulated community: messages go from
// user@a to user@b.
const User = "user"

// Clock is a virtual clock: it moves only when told to.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t (never backwards).
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	if t.After(c.t) {
		c.t = t
	}
	c.mu.Unlock()
}

// Network is a set of real nodes (package node, each with its SQLite store
// and spool in its own folder) that trust one another, sticks (folders)
// and the counters of what moved between them.
type Network struct {
	Dir   string
	Nodes []*node.Node
	now   func() time.Time

	byName map[string]*node.Node
	mu     sync.Mutex
	// Carried counts bundle bytes written to carriers: sent over live
	// links and written to sticks.
	Carried int64
	// Contacts counts contacts run, by medium.
	Contacts map[string]int
}

// Options tune a network.
type Options struct {
	// Now is the nodes' clock; nil means a virtual Clock starting on
	// 2026-11-01, which the caller moves (Network.Clock).
	Now func() time.Time
	// Routing is every node's routing policy.
	Routing node.Routing
	// MessageTTL is how long bundles travel; zero means node's default.
	MessageTTL time.Duration
}

// NewNetwork makes a node for each name under dir, each with the user
// User, and makes every node trust every other.
func NewNetwork(ctx context.Context, dir string, names []string, opts Options) (*Network, error) {
	if opts.Now == nil {
		opts.Now = NewClock(Start).Now
	}
	nw := &Network{Dir: dir, now: opts.Now, byName: map[string]*node.Node{}, Contacts: map[string]int{}}
	var cards []string
	for _, name := range names {
		n, err := node.Init(filepath.Join(dir, "nodes", name), name, node.Options{Now: opts.Now, MessageTTL: opts.MessageTTL})
		if err != nil {
			nw.Close()
			return nil, fmt.Errorf("sim: %w", err)
		}
		nw.Nodes = append(nw.Nodes, n)
		nw.byName[name] = n
		n.SetRouting(opts.Routing)
		if err := n.AddUser(ctx, User); err != nil {
			nw.Close()
			return nil, fmt.Errorf("sim: %w", err)
		}
		card, err := n.Card(nil, nil)
		if err != nil {
			nw.Close()
			return nil, fmt.Errorf("sim: %w", err)
		}
		cards = append(cards, card)
	}
	for i, n := range nw.Nodes {
		for j, card := range cards {
			if i == j {
				continue
			}
			if _, err := n.AddPeer(ctx, card, ""); err != nil {
				nw.Close()
				return nil, fmt.Errorf("sim: %w", err)
			}
		}
	}
	return nw, nil
}

// Start is when a simulation's virtual clock starts.
var Start = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// Node returns the node named name, or nil.
func (nw *Network) Node(name string) *node.Node { return nw.byName[name] }

// Close closes every node.
func (nw *Network) Close() error {
	for _, n := range nw.Nodes {
		n.Close()
	}
	return nil
}

// Send queues a message from user@from to user@to.
func (nw *Network) Send(ctx context.Context, from, to, body string) (node.MessageID, error) {
	a := nw.byName[from]
	if a == nil || nw.byName[to] == nil {
		return node.MessageID{}, fmt.Errorf("sim: no node %s or %s", from, to)
	}
	return a.Send(ctx, User, node.Address{User: User, Node: to}, body)
}

// SendBulk queues a bulky bundle (an archive bundle of size random bytes,
// like a delta of a site) from from to to.
func (nw *Network) SendBulk(ctx context.Context, from, to string, size int) (bundle.ID, int64, error) {
	a, b := nw.byName[from], nw.byName[to]
	if a == nil || b == nil {
		return bundle.ID{}, 0, fmt.Errorf("sim: no node %s or %s", from, to)
	}
	body := make([]byte, size)
	rand.Read(body)
	return a.SealRecords(ctx, b.ID(), bundle.KindArchive, 4, 0, func(w *bundle.Writer) error {
		return w.WriteRecord(bundle.RecordFile, body)
	})
}

// LinkFunc makes the two ends of a live link between a and b.
type LinkFunc func(a, b *node.Node) (carriers.Link, carriers.Link, error)

// PipeLink returns a LinkFunc of in-memory links of the given medium
// ("tcp", "lora", ...) and MTU.
func PipeLink(medium string, mtu int) LinkFunc {
	return func(a, b *node.Node) (carriers.Link, carriers.Link, error) {
		la, lb := carriers.Pipe(mtu)
		return named{la, medium}, named{lb, medium}, nil
	}
}

// named gives a link a medium name.
type named struct {
	carriers.Link
	medium string
}

func (l named) Info() carriers.LinkInfo {
	i := l.Link.Info()
	i.Medium = l.medium
	return i
}

// Live runs one session between the nodes a and b over a link mk makes,
// both ends at once (carriers.Sync), each sending at most capacity bundle
// bytes (0: no bound). It returns both reports.
func (nw *Network) Live(ctx context.Context, a, b *node.Node, mk LinkFunc, capacity int64) (*carriers.Report, *carriers.Report, error) {
	la, lb, err := mk(a, b)
	if err != nil {
		return nil, nil, err
	}
	opts := carriers.Options{MaxSend: capacity, MaxReceive: capacity, Idle: 10 * time.Minute}
	var ra, rb *carriers.Report
	var ea, eb error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); ra, ea = carriers.Sync(ctx, a, la, opts) }()
	go func() { defer wg.Done(); rb, eb = carriers.Sync(ctx, b, lb, opts) }()
	wg.Wait()
	medium := la.Info().Medium
	nw.mu.Lock()
	nw.Contacts[medium]++
	if ra != nil {
		nw.Carried += ra.Sent.Bytes
	}
	if rb != nil {
		nw.Carried += rb.Sent.Bytes
	}
	nw.mu.Unlock()
	if ea != nil || eb != nil {
		return ra, rb, fmt.Errorf("sim: %s session %s-%s: %v / %v", medium, a.Name(), b.Name(), ea, eb)
	}
	return ra, rb, nil
}

// Stick is a simulated USB stick: a folder, with a capacity.
type Stick struct {
	Name     string
	Dir      string
	Capacity int64
}

// NewStick makes a stick of capacity bytes (0: the folder's free space).
func (nw *Network) NewStick(name string, capacity int64) (*Stick, error) {
	dir := filepath.Join(nw.Dir, "sticks", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	return &Stick{Name: name, Dir: dir, Capacity: capacity}, nil
}

// Plug syncs the stick with node n (usb.Sync), as plugging it in does.
func (nw *Network) Plug(ctx context.Context, s *Stick, n *node.Node) (*usb.Report, error) {
	rep, err := usb.Sync(ctx, n, s.Dir, usb.Options{Capacity: s.Capacity, Reserve: 1})
	nw.mu.Lock()
	nw.Contacts["usb"]++
	if rep != nil {
		nw.Carried += rep.ExportedBytes
	}
	nw.mu.Unlock()
	if err != nil {
		return rep, fmt.Errorf("sim: stick %s at %s: %w", s.Name, n.Name(), err)
	}
	return rep, nil
}

// StickBundles lists the bundles on a stick by file name.
func (s *Stick) Bundles() ([]string, error) {
	return filepath.Glob(filepath.Join(s.Dir, usb.Dir, "bundles", "*", "*.bundle"))
}
