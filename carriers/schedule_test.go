package carriers

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"ferry/bundle"
)

func TestParseSchedule(t *testing.T) {
	for _, s := range []string{"every 6h", "every 30m", "daily 03:00", "daily 15:30,03:00"} {
		sc, err := ParseSchedule(s)
		if err != nil {
			t.Errorf("%q: %v", s, err)
			continue
		}
		if s == "daily 15:30,03:00" && sc.String() != "daily 03:00,15:30" || s != "daily 15:30,03:00" && sc.String() != s {
			t.Errorf("%q reads back as %q", s, sc.String())
		}
	}
	for _, s := range []string{"", "every", "every 10s", "every six hours", "daily 3", "daily 24:00", "daily 03:7", "weekly 03:00"} {
		if _, err := ParseSchedule(s); err == nil {
			t.Errorf("%q parsed", s)
		}
	}
}

func TestScheduleNext(t *testing.T) {
	loc := time.FixedZone("here", 2*3600)
	at := time.Date(2026, 3, 14, 16, 0, 0, 0, loc)
	for _, tc := range []struct {
		sched string
		want  time.Time
	}{
		{"every 6h", at.Add(6 * time.Hour)},
		{"daily 03:00", time.Date(2026, 3, 15, 3, 0, 0, 0, loc)},
		{"daily 03:00,17:45", time.Date(2026, 3, 14, 17, 45, 0, 0, loc)},
		{"daily 16:00", time.Date(2026, 3, 15, 16, 0, 0, 0, loc)},
	} {
		sc, _ := ParseSchedule(tc.sched)
		if got := sc.Next(at); !got.Equal(tc.want) {
			t.Errorf("%s after %s: %s, want %s", tc.sched, at, got, tc.want)
		}
	}
}

// fakeSyncs records the scheduler's attempts and fails them while fail is set.
type fakeSyncs struct {
	mu    sync.Mutex
	at    []time.Time
	addrs []string
	fail  bool
}

func (f *fakeSyncs) sync(ctx context.Context, t Target, addr string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.at = append(f.at, time.Now())
	f.addrs = append(f.addrs, addr)
	if f.fail {
		return errors.New("connection refused")
	}
	return nil
}

func (f *fakeSyncs) times() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []time.Duration
	for i := 1; i < len(f.at); i++ {
		out = append(out, f.at[i].Sub(f.at[i-1]).Round(time.Minute))
	}
	return out
}

func TestSchedulerKeepsTheSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeSyncs{}
		s := NewScheduler(nil, nil)
		s.sync = f.sync
		sc, _ := ParseSchedule("every 1h")
		start := time.Now()
		s.Set([]Target{{Peer: bundle.NodeID{1}, Name: "river", Addrs: []string{"river:7373"}, Schedule: sc}})
		s.Open(t.Context())
		time.Sleep(3*time.Hour + time.Minute)
		s.Close()
		if got := len(f.at); got != 4 {
			t.Fatalf("%d syncs in 3 hours, want 4 (one at the start)", got)
		}
		if d := f.at[0].Sub(start); d > startJitter {
			t.Errorf("first sync %s after the start", d)
		}
		for _, d := range f.times() {
			if d != time.Hour {
				t.Errorf("syncs %s apart, want an hour", d)
			}
		}
	})
}

func TestSchedulerBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeSyncs{fail: true}
		s := NewScheduler(nil, nil)
		s.sync = f.sync
		sc, _ := ParseSchedule("every 6h")
		s.Set([]Target{{Peer: bundle.NodeID{1}, Name: "river", Addrs: []string{"river:7373"}, Schedule: sc}})
		s.Open(t.Context())
		time.Sleep(6*time.Hour + 10*time.Hour)
		s.Close()
		gaps := f.times()
		if len(gaps) < 6 {
			t.Fatalf("only %d attempts", len(gaps)+1)
		}
		// 1, 2, 4, 8, 16, 32 minutes (plus up to a quarter of jitter),
		// then an hour at most.
		want := []time.Duration{1, 2, 4, 8, 16, 32, 60}
		for i, g := range gaps[:min(len(gaps), len(want))] {
			lo, hi := want[i]*time.Minute, want[i]*time.Minute*5/4+time.Minute
			if g < lo || g > hi {
				t.Errorf("gap %d: %s, want %s to %s", i, g, lo, hi)
			}
		}
		for _, g := range gaps {
			if g > MaxBackoff*5/4+time.Minute {
				t.Errorf("gap of %s, more than the backoff bound", g)
			}
		}
	})
}

func TestSchedulerSyncNow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeSyncs{}
		s := NewScheduler(nil, nil)
		s.sync = f.sync
		s.Open(t.Context())
		peer := bundle.NodeID{2}
		s.SyncNow(peer, "10.0.0.7:7373")
		synctest.Wait()
		s.SyncNow(peer, "10.0.0.7:7373") // too soon: ignored
		synctest.Wait()
		time.Sleep(6 * time.Minute)
		s.SyncNow(peer, "10.0.0.7:7373")
		synctest.Wait()
		s.Close()
		if len(f.at) != 2 || f.addrs[0] != "10.0.0.7:7373" {
			t.Errorf("syncs %v at %v, want 2 at the discovered address", f.at, f.addrs)
		}
	})
}
