package lora

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// A Budget keeps the airtime of every sliding window within a duty
// cycle. Each transmission is recorded with its start and length; a new
// one of length d may start at s only if the airtime of the
// transmissions that end after s+d−Window, plus d, fits the budget. A
// transmission partly inside a window counts whole, so the rule is
// conservative.
//
// A Budget is safe for concurrent use. Its clock is the time package's,
// which testing/synctest makes virtual.
type Budget struct {
	mu     sync.Mutex
	window time.Duration
	limit  time.Duration
	txs    []tx // in order of start
	used   time.Duration
}

type tx struct{ start, end time.Time }

// NewBudget returns a budget of the region's duty cycle, or nil if the
// region has none (a nil *Budget allows everything).
func NewBudget(r Region) *Budget {
	if r.DutyCycle <= 0 {
		return nil
	}
	return &Budget{window: r.Window, limit: r.Budget()}
}

// Limit returns the airtime allowed per window.
func (b *Budget) Limit() time.Duration {
	if b == nil {
		return 0
	}
	return b.limit
}

// Used returns the airtime counted in the window ending now.
func (b *Budget) Used(now time.Time) time.Duration {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expire(now)
	return b.used
}

func (b *Budget) expire(now time.Time) {
	i := 0
	for i < len(b.txs) && !b.txs[i].end.After(now.Add(-b.window)) {
		b.used -= b.txs[i].end.Sub(b.txs[i].start)
		i++
	}
	b.txs = b.txs[i:]
}

// Earliest returns the earliest time at or after now that a frame of d on
// air may start.
func (b *Budget) Earliest(now time.Time, d time.Duration) (time.Time, error) {
	if b == nil {
		return now, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.earliest(now, d)
}

func (b *Budget) earliest(now time.Time, d time.Duration) (time.Time, error) {
	if d > b.limit {
		return time.Time{}, fmt.Errorf("lora: a frame of %v on air exceeds the whole budget of %v per %v", d, b.limit, b.window)
	}
	b.expire(now)
	used, s := b.used, now
	for _, t := range b.txs {
		if used+d <= b.limit {
			break
		}
		used -= t.end.Sub(t.start)
		// t no longer counts once s+d−window ≥ t.end.
		s = later(s, t.end.Add(b.window-d))
	}
	if len(b.txs) > 0 {
		s = later(s, b.txs[len(b.txs)-1].end) // one transmitter: no overlap
	}
	return s, nil
}

// Record counts a transmission of d starting at start.
func (b *Budget) Record(start time.Time, d time.Duration) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.txs = append(b.txs, tx{start, start.Add(d)})
	b.used += d
}

// Acquire waits until a frame of d on air fits the budget, records it as
// starting then, and returns that time. It returns early with ctx's error.
func (b *Budget) Acquire(ctx context.Context, d time.Duration) (time.Time, error) {
	return b.acquire(ctx, d, true)
}

// Wait waits until d of airtime fits the budget, without recording it:
// a sender waits for a whole burst before its first frame, so that no
// frame of the burst waits and the peer does not time out mid-burst.
func (b *Budget) Wait(ctx context.Context, d time.Duration) error {
	_, err := b.acquire(ctx, d, false)
	return err
}

func (b *Budget) acquire(ctx context.Context, d time.Duration, record bool) (time.Time, error) {
	if b == nil {
		return time.Now(), nil
	}
	for {
		b.mu.Lock()
		now := time.Now()
		s, err := b.earliest(now, d)
		if err != nil {
			b.mu.Unlock()
			return time.Time{}, err
		}
		if !s.After(now) {
			if record {
				b.txs = append(b.txs, tx{now, now.Add(d)})
				b.used += d
			}
			b.mu.Unlock()
			return now, nil
		}
		b.mu.Unlock()
		t := time.NewTimer(s.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return time.Time{}, ctx.Err()
		case <-t.C:
		}
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
