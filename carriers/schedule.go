package carriers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"ferry/bundle"
	"ferry/node"
)

// Schedule says when to sync with a peer: every so long ("every 6h"), or
// at set times of the day, local time ("daily 03:00", "daily 03:00,15:30").
type Schedule struct {
	every time.Duration
	daily []time.Duration // offsets from midnight, ascending
}

// MinInterval is the shortest interval a schedule may have.
const MinInterval = time.Minute

// ParseSchedule parses "every DURATION" (Go syntax, at least a minute:
// 30m, 6h, 24h) or "daily HH:MM[,HH:MM...]".
func ParseSchedule(s string) (Schedule, error) {
	kind, arg, _ := strings.Cut(strings.TrimSpace(s), " ")
	arg = strings.TrimSpace(arg)
	switch kind {
	case "every":
		d, err := time.ParseDuration(arg)
		if err != nil || d < MinInterval {
			return Schedule{}, fmt.Errorf("carriers: schedule %q: want 'every' and a duration of at least a minute, e.g. 'every 6h'", s)
		}
		return Schedule{every: d}, nil
	case "daily":
		var sc Schedule
		for _, hm := range strings.Split(arg, ",") {
			h, m, ok := strings.Cut(strings.TrimSpace(hm), ":")
			hh, err1 := strconv.Atoi(h)
			mm, err2 := strconv.Atoi(m)
			if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 || len(m) != 2 {
				return Schedule{}, fmt.Errorf("carriers: schedule %q: want 'daily HH:MM', e.g. 'daily 03:00'", s)
			}
			sc.daily = append(sc.daily, time.Duration(hh)*time.Hour+time.Duration(mm)*time.Minute)
		}
		slices.Sort(sc.daily)
		sc.daily = slices.Compact(sc.daily)
		return sc, nil
	}
	return Schedule{}, fmt.Errorf("carriers: schedule %q: want 'every 6h' or 'daily 03:00'", s)
}

// Next returns the first time after t the schedule calls for a sync.
func (sc Schedule) Next(t time.Time) time.Time {
	if sc.every > 0 {
		return t.Add(sc.every)
	}
	y, mo, d := t.Date()
	midnight := time.Date(y, mo, d, 0, 0, 0, 0, t.Location())
	for day := 0; day < 2; day++ {
		base := midnight.AddDate(0, 0, day)
		for _, off := range sc.daily {
			// Add hours and minutes on the wall clock, so that a day
			// with a daylight saving change keeps 03:00 at 03:00.
			at := time.Date(base.Year(), base.Month(), base.Day(), int(off/time.Hour), int(off%time.Hour/time.Minute), 0, 0, t.Location())
			if at.After(t) {
				return at
			}
		}
	}
	return t.Add(24 * time.Hour)
}

func (sc Schedule) zero() bool { return sc.every == 0 && len(sc.daily) == 0 }

// Interval returns the schedule's typical gap between syncs.
func (sc Schedule) Interval() time.Duration {
	if sc.every > 0 {
		return sc.every
	}
	return 24 * time.Hour / time.Duration(max(len(sc.daily), 1))
}

func (sc Schedule) String() string {
	if sc.every > 0 {
		d := sc.every.String() // 6h0m0s
		d, _ = strings.CutSuffix(d, "0s")
		if strings.HasSuffix(d, "h0m") {
			d = strings.TrimSuffix(d, "0m")
		}
		return "every " + d
	}
	parts := make([]string, len(sc.daily))
	for i, off := range sc.daily {
		parts[i] = fmt.Sprintf("%02d:%02d", int(off/time.Hour), int(off%time.Hour/time.Minute))
	}
	return "daily " + strings.Join(parts, ",")
}

// Target is a peer to sync with on a schedule.
type Target struct {
	Peer     bundle.NodeID
	Name     string
	Addrs    []string // tried in order
	Schedule Schedule
}

// Backoff bounds: after a failed attempt the next comes MinBackoff later,
// doubling each time up to MaxBackoff (or the schedule's interval, if
// shorter), with some jitter.
const (
	MinBackoff = time.Minute
	MaxBackoff = time.Hour
)

// startJitter spreads the first syncs after a start.
const startJitter = 3 * time.Second

// Scheduler syncs with peers soon after it starts, then at the times their
// schedules set, and when
// asked ([Scheduler.SyncNow], e.g. by LAN discovery). A peer that cannot
// be reached is tried again after a growing delay. Open starts it; Close
// stops it and waits for the sessions under way.
type Scheduler struct {
	// Session tunes every session; its Stats, if set, records them, and
	// failed attempts too.
	Session Options
	// Logger receives the scheduler's log; nil discards it.
	Logger *slog.Logger
	// NudgeGap is how soon after a sync with a peer SyncNow may start
	// another; zero means 5 minutes.
	NudgeGap time.Duration

	n      *node.Node
	dialer Dialer
	// sync runs one attempt; tests replace it.
	sync func(ctx context.Context, t Target, addr string) error

	mu      sync.Mutex
	targets map[bundle.NodeID]*targetState
	wake    chan struct{}
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type targetState struct {
	Target
	next    time.Time
	backoff time.Duration
	running bool
	last    time.Time // end of the last attempt
	nudge   string    // an address to try now, from SyncNow
}

// NewScheduler returns a scheduler for node n that reaches peers with d.
func NewScheduler(n *node.Node, d Dialer) *Scheduler {
	s := &Scheduler{n: n, dialer: d, targets: map[bundle.NodeID]*targetState{}, wake: make(chan struct{}, 1)}
	s.sync = s.dialAndSync
	return s
}

// Set replaces the targets. A target kept keeps its next time.
func (s *Scheduler) Set(targets []Target) {
	s.mu.Lock()
	now := time.Now()
	old := s.targets
	s.targets = map[bundle.NodeID]*targetState{}
	for _, t := range targets {
		// A node that starts (a Pi plugged in) syncs soon, then on schedule.
		st := &targetState{Target: t, next: farFuture}
		if !t.Schedule.zero() {
			st.next = now.Add(time.Duration(rand.Int64N(int64(startJitter))))
		}
		if o := old[t.Peer]; o != nil {
			st.next, st.backoff, st.running, st.last = o.next, o.backoff, o.running, o.last
			if o.Schedule.String() != t.Schedule.String() {
				st.next = t.Schedule.Next(now)
			}
		}
		s.targets[t.Peer] = st
	}
	s.mu.Unlock()
	s.poke()
}

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// SyncNow asks for a sync with peer soon, at addr if it is not empty (a
// discovered address), unless one ran in the last NudgeGap. A peer with
// no target is synced once at addr.
func (s *Scheduler) SyncNow(peer bundle.NodeID, addr string) {
	s.mu.Lock()
	st := s.targets[peer]
	if st == nil {
		st = &targetState{Target: Target{Peer: peer, Name: peer.Short()}, next: farFuture}
		s.targets[peer] = st
	}
	gap := s.NudgeGap
	if gap == 0 {
		gap = 5 * time.Minute
	}
	if !st.running && time.Since(st.last) >= gap {
		st.nudge = addr
		st.next = time.Now()
	}
	s.mu.Unlock()
	s.poke()
}

var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// Open starts the scheduler.
func (s *Scheduler) Open(ctx context.Context) error {
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.Session.Logger == nil {
		s.Session.Logger = s.Logger
	}
	ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.loop(ctx) }()
	return nil
}

// Close stops the scheduler and waits for the sessions under way to end.
func (s *Scheduler) Close() error {
	if s.cancel != nil {
		s.cancel()
		s.wg.Wait()
	}
	return nil
}

func (s *Scheduler) loop(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		now := time.Now()
		next := farFuture
		s.mu.Lock()
		for _, st := range s.targets {
			if st.running {
				continue
			}
			if !st.next.After(now) {
				st.running = true
				addr := st.nudge
				st.nudge = ""
				tgt := st.Target
				s.wg.Add(1)
				go func() { defer s.wg.Done(); s.attempt(ctx, tgt, addr) }()
				continue
			}
			if st.next.Before(next) {
				next = st.next
			}
		}
		s.mu.Unlock()
		t.Reset(min(next.Sub(now), 24*time.Hour))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
	}
}

// attempt syncs with a target once and schedules the next attempt.
func (s *Scheduler) attempt(ctx context.Context, t Target, nudge string) {
	addrs := t.Addrs
	if nudge != "" {
		addrs = append([]string{nudge}, addrs...)
	}
	err := errors.New("no address known")
	for _, a := range addrs {
		if err = s.sync(ctx, t, a); err == nil || ctx.Err() != nil {
			break
		}
		var refused *RefusedError
		if errors.As(err, &refused) || errors.Is(err, ErrUntrusted) {
			break // the node answered: another address will not do better
		}
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.poke()
	st := s.targets[t.Peer]
	if st == nil {
		return
	}
	st.running, st.last = false, now
	interval := t.Schedule.Interval()
	switch {
	case err == nil:
		st.backoff = 0
		st.next = farFuture
		if !t.Schedule.zero() {
			st.next = t.Schedule.Next(now)
		}
	case ctx.Err() != nil:
	default:
		if st.backoff == 0 {
			st.backoff = MinBackoff
		} else {
			st.backoff *= 2
		}
		st.backoff = min(st.backoff, MaxBackoff, max(interval, MinBackoff))
		jitter := time.Duration(rand.Int64N(int64(st.backoff/4) + 1))
		st.next = now.Add(st.backoff + jitter)
		if len(t.Addrs) == 0 && nudge != "" {
			st.next = farFuture // a discovered address: wait for the next beacon
		}
		s.Logger.Info("sync with a peer failed", "peer", t.Name, "err", err, "retry", st.next.Format(time.TimeOnly))
	}
}

// dialAndSync dials a target at addr and runs a session.
func (s *Scheduler) dialAndSync(ctx context.Context, t Target, addr string) error {
	opts := s.Session
	opts.Peer = t.Peer
	ctx, cancel := context.WithTimeout(ctx, MaxSession)
	defer cancel()
	l, err := s.dialer.Dial(ctx, addr, t.Peer)
	if err != nil {
		if opts.Stats != nil {
			opts.Stats.failed(t.Peer, t.Name, addr, time.Now(), err)
		}
		return err
	}
	rep, err := Sync(ctx, s.n, l, opts)
	if err == nil {
		s.Logger.Info("synced with a peer", "peer", rep.PeerName, "remote", rep.Remote, "received", rep.Received.Bundles, "sent", rep.Sent.Bundles)
	}
	return err
}

// TargetsFromCards makes a target of every peer whose card gives
// addresses, all on one schedule.
func TargetsFromCards(peers []node.Peer, sc Schedule) []Target {
	var out []Target
	for _, p := range peers {
		c, err := node.ParseCard(p.Card)
		if err != nil || len(c.Addrs) == 0 {
			continue
		}
		out = append(out, Target{Peer: p.ID, Name: p.Name, Addrs: c.Addrs, Schedule: sc})
	}
	return out
}
