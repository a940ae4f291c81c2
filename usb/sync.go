package usb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"ferry/bundle"
	"ferry/node"
)

// Options tune a sync. The zero value is ready to use.
type Options struct {
	// Reserve is the space left free on the stick; zero means 2 % of its
	// size, at least 1 MiB and at most 64 MiB.
	Reserve int64
	// Progress, if set, is called as bytes move.
	Progress func(Progress)
	// Logger receives the sync's log; nil discards it.
	Logger *slog.Logger
	// Capacity, if positive, is the most bundle bytes the stick may hold,
	// whatever its free space (a stick shared with other files, or a
	// simulated one).
	Capacity int64
}

// Progress reports a sync under way.
type Progress struct {
	Phase string // "import" or "export"
	Done  int64  // bytes done in this phase
	Total int64  // bytes the phase will move
}

// Report says what a sync did.
type Report struct {
	Node     string    `json:"node"`
	Stick    string    `json:"stick"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`

	Applied    int   `json:"applied"`    // bundles for this node, applied
	Stored     int   `json:"stored"`     // bundles taken on for carrying
	Duplicates int   `json:"duplicates"` // bundles already seen
	Messages   int   `json:"messages"`   // new messages applied
	Receipts   int   `json:"receipts"`   // receipts applied
	Imported   int64 `json:"imported_bytes"`

	Exported      int   `json:"exported"`
	ExportedBytes int64 `json:"exported_bytes"`
	OnStick       int   `json:"already_on_stick"`
	// NotFitted counts bundles that did not fit in the stick's free space.
	NotFitted      int   `json:"not_fitted"`
	NotFittedBytes int64 `json:"not_fitted_bytes"`

	Pruned      int   `json:"pruned"`
	PrunedBytes int64 `json:"pruned_bytes"`
	Debris      int   `json:"debris_removed"`

	Left    []Issue `json:"left,omitempty"`    // bundles left on the stick for others
	Refused []Issue `json:"refused,omitempty"` // damaged bundles, moved to FERRY/damaged
	// Failed are bundles this node could not take in for a reason of its
	// own (a full disk): they stay on the stick, and the sync ends in an
	// error once everything else is done.
	Failed  []Issue `json:"failed,omitempty"`
	Ignored []Issue `json:"ignored,omitempty"` // inventories not trusted or unreadable

	Inventories []string `json:"inventories"` // nodes whose inventories the stick holds
	Bundles     int      `json:"stick_bundles"`
	Bytes       int64    `json:"stick_bytes"`
	Free        int64    `json:"stick_free"`
}

// Issue is one file a sync could not use, and why.
type Issue struct {
	File   string `json:"file"`
	Reason string `json:"reason"`
}

// stickBundle is a bundle found on the stick.
type stickBundle struct {
	path string
	size int64
	h    bundle.Header
}

// Sync exchanges bundles between node n and the stick mounted at root
// (or any folder): import, export, inventory, prune, in that order. Each
// step is safe to interrupt; running Sync again finishes the work.
func Sync(ctx context.Context, n *node.Node, root string, opts Options) (*Report, error) {
	s := &syncer{n: n, l: layout{root: filepath.Join(root, Dir)}, opts: opts, log: opts.Logger,
		rep: &Report{Node: n.Name(), Stick: root, Started: n.Now()}, onStick: map[bundle.ID]*stickBundle{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("usb: %s is not a folder", root)
	}
	if err := s.l.prepare(); err != nil {
		return nil, err
	}
	var err error
	if s.rep.Debris, err = s.l.sweepDebris(); err != nil {
		return nil, err
	}
	steps := []func(context.Context) error{s.readInventories, s.lastHolder, s.importBundles, s.readRoutes,
		s.exportBundles, s.writeInventory, s.writeRoutes, s.prune}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return s.rep, err
		}
	}
	if err := s.noteContact(ctx); err != nil {
		return s.rep, err
	}
	s.rep.Free = s.free()
	s.rep.Finished = n.Now()
	if s.failed != nil {
		return s.rep, fmt.Errorf("%d bundles were not taken in and stay on the stick; the first: %w", len(s.rep.Failed), s.failed)
	}
	return s.rep, nil
}

type syncer struct {
	n       *node.Node
	l       layout
	opts    Options
	log     *slog.Logger
	rep     *Report
	invs    map[bundle.NodeID]*Inventory
	onStick map[bundle.ID]*stickBundle
	// reach is what the nodes this stick meets can deliver to, from
	// their inventories and routing summaries; delivered, the bundles
	// they know delivered (usb/routes.go).
	reach     map[bundle.NodeID]float64
	delivered map[node.SeqRef]bool
	from      *Inventory // the node that synced the stick before this one
	// notIntroduced are announcements waiting for the one that
	// introduces their node.
	notIntroduced []waiting
	failed        error // the first bundle this node could not take in
}

// waiting is a bundle on the stick to try again.
type waiting struct {
	path   string
	id     bundle.ID
	reason string
}

// noteContact records the stick's trip as a contact with the node that
// synced it last before this one (by the inventories found on it): the
// map and the node's announcements show it (docs/network.md).
func (s *syncer) noteContact(ctx context.Context) error {
	if s.from == nil {
		return nil
	}
	return s.n.RecordContact(ctx, s.from.Node, "usb", s.n.Now(), s.rep.Imported+s.rep.ExportedBytes)
}

// lastHolder finds the node that synced the stick last, unless that was
// this node (the stick came straight back) or the stick is new.
// Inventories tell the time to the second: of two in the same second,
// the other node's counts as the later.
func (s *syncer) lastHolder(context.Context) error {
	var last *Inventory
	for _, inv := range s.invs {
		if last == nil || inv.At.After(last.At) || (inv.At.Equal(last.At) && last.Node == s.n.ID()) {
			last = inv
		}
	}
	if last != nil && last.Node != s.n.ID() {
		s.from = last
	}
	return nil
}

// readInventories reads the inventories of trusted nodes; others are
// ignored with a reason.
func (s *syncer) readInventories(ctx context.Context) error {
	s.invs = map[bundle.NodeID]*Inventory{}
	entries, err := os.ReadDir(s.l.inventory())
	if err != nil {
		return fmt.Errorf("usb: %w", err)
	}
	self := s.n.ID()
	for _, e := range entries {
		if e.IsDir() || isTemp(e.Name()) {
			continue
		}
		ignore := func(reason string) {
			s.rep.Ignored = append(s.rep.Ignored, Issue{File: s.rel(filepath.Join(s.l.inventory(), e.Name())), Reason: reason})
		}
		b, err := readLimited(filepath.Join(s.l.inventory(), e.Name()), maxInventorySize)
		if err != nil {
			ignore(err.Error())
			continue
		}
		inv, err := ParseInventory(b)
		if err != nil {
			ignore(err.Error())
			continue
		}
		if e.Name() != inv.Node.String()+inventoryExt {
			ignore("file name does not match the node that signed it")
			continue
		}
		if inv.Node != self {
			if _, err := s.n.Peer(ctx, inv.Node.String()); err != nil {
				ignore(fmt.Sprintf("signed by an unknown node %s", inv.Node.Short()))
				continue
			}
		}
		s.invs[inv.Node] = inv
	}
	return nil
}

// importBundles takes in every bundle on the stick that the node has not
// seen.
func (s *syncer) importBundles(ctx context.Context) error {
	type pending struct {
		path string
		size int64
		id   bundle.ID
	}
	var todo []pending
	var total int64
	err := filepath.WalkDir(s.l.bundles(), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			s.rep.Refused = append(s.rep.Refused, Issue{File: s.rel(p), Reason: err.Error()})
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			if p != s.l.bundles() && !isShard(d.Name()) {
				s.rep.Left = append(s.rep.Left, Issue{File: s.rel(p), Reason: "not a ferry folder: left as it is"})
			}
			return nil
		}
		if !d.Type().IsRegular() || isTemp(d.Name()) {
			if !isTemp(d.Name()) {
				s.rep.Left = append(s.rep.Left, Issue{File: s.rel(p), Reason: "not a regular file"})
			}
			return nil
		}
		sb, err := s.peek(p)
		if err != nil {
			if isForeign(d.Name(), err) {
				s.rep.Left = append(s.rep.Left, Issue{File: s.rel(p), Reason: "not a ferry bundle: left as it is"})
				return nil
			}
			s.damaged(p, err)
			return nil
		}
		id := sb.h.ID()
		canonical := s.l.bundlePath(id)
		if _, ok := s.onStick[id]; ok {
			if p != canonical {
				os.Remove(p) // a second copy of a bundle already found
			}
			return nil
		}
		if p != canonical {
			// Renamed, or copied by hand: put it where it belongs, unless
			// a good copy is there already.
			if _, err := s.peek(canonical); err == nil {
				os.Remove(p)
				sb.path = canonical
			} else {
				if err := os.MkdirAll(filepath.Dir(canonical), 0o755); err != nil {
					return fmt.Errorf("usb: %w", err)
				}
				if err := os.Rename(p, canonical); err != nil {
					return fmt.Errorf("usb: %w", err)
				}
				sb.path = canonical
			}
		}
		s.onStick[id] = sb
		seen, err := s.n.Seen(ctx, id)
		if err != nil {
			return err
		}
		if seen {
			s.rep.Duplicates++
			return nil
		}
		todo = append(todo, pending{path: sb.path, size: sb.size, id: id})
		total += sb.size
		return nil
	})
	if err != nil {
		return err
	}
	var done int64
	s.progress("import", 0, total)
	for _, t := range todo {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.ingest(ctx, t.path, t.id); err != nil {
			if ctx.Err() != nil {
				return err
			}
			// One bundle this node cannot store (say, a transfer whose
			// folder it cannot make) must not keep the rest from it.
			s.rep.Failed = append(s.rep.Failed, Issue{File: s.rel(t.path), Reason: err.Error()})
			s.failed = cmp.Or(s.failed, err)
		}
		done += t.size
		s.rep.Imported += t.size
		s.progress("import", done, total)
	}
	return s.ingestIntroduced(ctx)
}

// ingestIntroduced takes in the announcements that were refused because
// no announcement had introduced their node yet, now that the others on
// the stick are in, for as long as that lets more in (docs/network.md);
// the rest are left on the stick for others.
func (s *syncer) ingestIntroduced(ctx context.Context) error {
	for len(s.notIntroduced) > 0 {
		again := s.notIntroduced
		s.notIntroduced = nil
		for _, t := range again {
			if err := s.ingest(ctx, t.path, t.id); err != nil {
				return err
			}
		}
		if len(s.notIntroduced) == len(again) {
			break
		}
	}
	for _, t := range s.notIntroduced {
		s.rep.Left = append(s.rep.Left, Issue{File: s.rel(t.path), Reason: t.reason})
	}
	s.notIntroduced = nil
	return nil
}

// isForeign reports whether a file that is not a readable bundle is
// someone's own file (a note, a photo) rather than a damaged bundle: it
// neither starts like a bundle nor is named like one. Foreign files stay
// where they are; damaged bundles go to FERRY/damaged.
func isForeign(name string, err error) bool {
	return errors.Is(err, bundle.ErrNotBundle) && (!strings.HasSuffix(name, bundleExt) || strings.HasPrefix(name, "."))
}

// peek reads a bundle's header and checks its signature.
func (s *syncer) peek(path string) (*stickBundle, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	rd, err := bundle.NewReader(f, bundle.Limits{})
	if err != nil {
		return nil, err
	}
	h := rd.Header()
	if want := rd.PayloadOffset() + int64(h.PayloadSize); fi.Size() != want {
		if fi.Size() < want {
			return nil, fmt.Errorf("%w: %d of %d bytes", bundle.ErrTruncated, fi.Size(), want)
		}
		return nil, bundle.ErrTrailingData
	}
	return &stickBundle{path: path, size: fi.Size(), h: h}, nil
}

func (s *syncer) ingest(ctx context.Context, path string, id bundle.ID) error {
	f, err := os.Open(path)
	if err != nil {
		s.damaged(path, err)
		return nil
	}
	defer f.Close()
	// Read on the stick well ahead of the verifier: a stick answers
	// large sequential reads fastest, and reading runs on its own core.
	adviseSequential(f)
	ra := newReadAhead(f)
	res, err := s.n.Ingest(ctx, ra)
	ra.Close()
	var refused *node.RefusedError
	switch {
	case errors.As(err, &refused):
		if errors.Is(err, node.ErrNotIntroduced) {
			s.notIntroduced = append(s.notIntroduced, waiting{path: path, id: id, reason: refused.Reason.Error()})
			return nil
		}
		if errors.Is(err, node.ErrUnknownSigner) || errors.Is(err, node.ErrCannotCarry) ||
			errors.Is(err, node.ErrCarryQuota) || errors.Is(err, node.ErrDirectOnly) {
			s.rep.Left = append(s.rep.Left, Issue{File: s.rel(path), Reason: refused.Reason.Error()})
			return nil
		}
		if errors.Is(err, node.ErrExpired) {
			return nil // pruned below
		}
		f.Close()
		s.damaged(path, refused.Reason)
		delete(s.onStick, id)
		return nil
	case err != nil:
		return fmt.Errorf("usb: import %s: %w", s.rel(path), err)
	}
	switch res.Status {
	case node.StatusApplied:
		s.rep.Applied++
	case node.StatusStored:
		s.rep.Stored++
	case node.StatusDuplicate:
		s.rep.Duplicates++
	}
	s.rep.Messages += res.Messages
	s.rep.Receipts += res.Receipts
	return nil
}

// damaged moves an unreadable bundle out of the way, into FERRY/damaged,
// so that no node reads it as a bundle again, and reports it.
func (s *syncer) damaged(path string, reason error) {
	s.rep.Refused = append(s.rep.Refused, Issue{File: s.rel(path), Reason: reason.Error()})
	if err := os.MkdirAll(s.l.damaged(), 0o755); err != nil {
		return
	}
	dst := filepath.Join(s.l.damaged(), strings.TrimSuffix(filepath.Base(path), bundleExt)+".damaged")
	if err := os.Rename(path, dst); err != nil {
		os.Remove(path)
	}
}

// exportBundles fills the stick, most urgent first, with the bundles that
// the nodes this stick will meet still lack.
func (s *syncer) exportBundles(ctx context.Context) error {
	held, err := s.n.Held(ctx)
	if err != nil {
		return err
	}
	self := s.n.ID()
	var others []*Inventory
	for id, inv := range s.invs {
		if id != self {
			others = append(others, inv)
		}
	}
	var todo []node.BundleInfo
	var settled []bundle.ID
	var total int64
	// Our own bundles found on the stick count as carried too: a sync
	// killed after writing them but before recording it left them there,
	// and their messages would otherwise stay queued.
	var carried []bundle.ID
	for _, b := range held {
		if _, ok := s.onStick[b.ID]; ok {
			s.rep.OnStick++
			if b.Source == self {
				carried = append(carried, b.ID)
			}
			continue
		}
		if b.Dest.Type == bundle.DestNode {
			if inv, ok := s.invs[bundle.NodeID(b.Dest.ID)]; ok && inv.Holds(b.ID) {
				settled = append(settled, b.ID)
				continue
			}
		}
		if !useful(b, others) {
			continue
		}
		todo = append(todo, b)
		total += b.Size
	}
	if err := s.n.Settled(ctx, settled); err != nil {
		return err
	}
	// Keep room for this node's inventory, written after the export.
	reserve := s.reserve() + s.inventoryEstimate(ctx)
	// The routing policy chooses what goes, and in which order.
	todo, err = s.n.Plan(ctx, node.Contact{Medium: "usb", Capacity: max(s.free()-reserve, 1), Reach: s.reach}, todo)
	if err != nil {
		return err
	}
	total = 0
	for _, b := range todo {
		total += b.Size
	}
	var done int64
	var exported []bundle.ID
	s.progress("export", 0, total)
	for i, b := range todo {
		if err := ctx.Err(); err != nil {
			return err
		}
		if free := s.free(); free >= 0 && b.Size > free-reserve {
			s.rep.NotFitted++
			s.rep.NotFittedBytes += b.Size
			continue
		}
		err := s.copyOut(b, func(k int64) { done += k; s.progress("export", done, total) })
		if isNoSpace(err) {
			// The stick is full: what is left waits for the next stick.
			for _, r := range todo[i:] {
				s.rep.NotFitted++
				s.rep.NotFittedBytes += r.Size
			}
			break
		}
		if err != nil {
			return err
		}
		exported = append(exported, b.ID)
		s.rep.Exported++
		s.rep.ExportedBytes += b.Size
		s.onStick[b.ID] = &stickBundle{path: s.l.bundlePath(b.ID), size: b.Size,
			h: bundle.Header{Dest: b.Dest, Expires: b.Expires, Source: b.Source, Seq: b.Seq}}
	}
	return s.n.MarkCarried(ctx, bundle.NodeID{}, "usb", append(carried, exported...))
}

// useful reports whether a bundle is worth putting on a stick that the
// nodes of others will see. With no other inventory on the stick, every
// bundle is: it is a new stick, and nobody knows where it will go.
func useful(b node.BundleInfo, others []*Inventory) bool {
	if len(others) == 0 || b.Dest.Type != bundle.DestNode {
		return true
	}
	dest := bundle.NodeID(b.Dest.ID)
	for _, inv := range others {
		if !inv.Holds(b.ID) && (inv.Node == dest || inv.WantsNode(dest)) {
			return true
		}
	}
	return false
}

func (s *syncer) copyOut(b node.BundleInfo, progress func(int64)) error {
	src, err := s.n.OpenBundle(b.ID)
	if err != nil {
		return err
	}
	defer src.Close()
	dst := s.l.bundlePath(b.ID)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("usb: %w", err)
	}
	_, err = copyAtomic(dst, src, progress)
	return err
}

func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EFBIG)
}

// reserve returns the space to leave free on the stick.
func (s *syncer) reserve() int64 {
	if s.opts.Reserve > 0 {
		return s.opts.Reserve
	}
	if s.opts.Capacity > 0 {
		return s.opts.Capacity / 50
	}
	size := totalSpace(s.l.root)
	return min(max(size/50, 1<<20), 64<<20)
}

// writeInventory leaves the node's signed inventory on the stick.
func (s *syncer) writeInventory(ctx context.Context) error {
	holds, err := s.n.Holds(ctx)
	if err != nil {
		return err
	}
	wants, err := s.n.Wants(ctx)
	if err != nil {
		return err
	}
	inv := &Inventory{Node: s.n.ID(), Name: s.n.Name(), At: s.n.Now(), Wants: wants}
	inv.SetHolds(holds)
	b, err := inv.Marshal(s.n.Identity().Sign)
	if err != nil {
		return err
	}
	if err := writeAtomic(s.l.inventoryPath(inv.Node), strings.NewReader(string(b))); err != nil {
		if isNoSpace(err) {
			return fmt.Errorf("usb: the stick is too full for this node's inventory (%d bytes): %w", len(b), err)
		}
		return err
	}
	s.invs[inv.Node] = inv
	for id := range s.invs {
		s.rep.Inventories = append(s.rep.Inventories, s.nodeName(ctx, id))
	}
	sort.Strings(s.rep.Inventories)
	return nil
}

func (s *syncer) nodeName(ctx context.Context, id bundle.NodeID) string {
	if id == s.n.ID() {
		return s.n.Name()
	}
	if p, err := s.n.Peer(ctx, id.String()); err == nil {
		return p.Name
	}
	return id.Short()
}

// prune removes from the stick what expired and what its destination
// holds, by the destination's own signed inventory.
func (s *syncer) prune(ctx context.Context) error {
	now := s.n.Now()
	for id, sb := range s.onStick {
		gone := sb.h.Expired(now) || s.delivered[node.SeqRef{Source: sb.h.Source, Seq: sb.h.Seq}]
		if !gone && sb.h.Dest.Type == bundle.DestNode {
			if inv, ok := s.invs[bundle.NodeID(sb.h.Dest.ID)]; ok && inv.Holds(id) {
				gone = true
			}
		}
		if !gone {
			s.rep.Bundles++
			s.rep.Bytes += sb.size
			continue
		}
		if err := os.Remove(sb.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("usb: prune: %w", err)
		}
		s.rep.Pruned++
		s.rep.PrunedBytes += sb.size
	}
	// Empty shard folders go too, so that the stick shows what it holds.
	entries, _ := os.ReadDir(s.l.bundles())
	for _, e := range entries {
		if e.IsDir() && isShard(e.Name()) {
			os.Remove(filepath.Join(s.l.bundles(), e.Name())) // fails unless empty
		}
	}
	return nil
}

func (s *syncer) progress(phase string, done, total int64) {
	if s.opts.Progress != nil {
		s.opts.Progress(Progress{Phase: phase, Done: done, Total: total})
	}
}

func (s *syncer) rel(p string) string {
	if r, err := filepath.Rel(filepath.Dir(s.l.root), p); err == nil {
		return r
	}
	return p
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%d bytes exceeds limit %d", fi.Size(), limit)
	}
	b := make([]byte, fi.Size())
	_, err = io.ReadFull(f, b)
	return b, err
}

// inventoryEstimate returns an upper bound of the size of this node's
// inventory, so that the export leaves room for it.
func (s *syncer) inventoryEstimate(ctx context.Context) int64 {
	holds, err := s.n.Holds(ctx)
	if err != nil {
		return 1 << 20
	}
	wants, err := s.n.Wants(ctx)
	if err != nil {
		return 1 << 20
	}
	return int64(4096 + len(wants)*32 + (len(holds)+len(s.onStick))*shortIDLen)
}
