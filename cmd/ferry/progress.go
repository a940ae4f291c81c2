package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"ferry/node"
)

// progressBar draws one line of progress (bytes, rate, ETA) on a terminal,
// and nothing when the output is not one.
type progressBar struct {
	w       io.Writer
	on      bool
	phase   string
	start   time.Time
	last    time.Time
	printed bool
}

func newProgressBar(w io.Writer) *progressBar {
	on := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			on = true
		}
	}
	return &progressBar{w: w, on: on}
}

func (b *progressBar) update(phase string, done, total int64) {
	if !b.on {
		return
	}
	now := time.Now()
	if phase != b.phase {
		if b.printed {
			fmt.Fprintln(b.w)
		}
		b.phase, b.start, b.last = phase, now, time.Time{}
	}
	if now.Sub(b.last) < 100*time.Millisecond && done != total {
		return
	}
	b.last, b.printed = now, true
	const width = 24
	frac := 1.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	fill := int(frac * width)
	rate := float64(done) / max(now.Sub(b.start).Seconds(), 0.001)
	eta := "--"
	if rate > 0 && total > done {
		eta = (time.Duration(float64(total-done)/rate) * time.Second / time.Second).Round(time.Second).String()
	}
	fmt.Fprintf(b.w, "\r%-7s [%s%s] %s / %s  %s/s  ETA %s   ", phase, strings.Repeat("=", fill), strings.Repeat(" ", width-fill),
		humanBytes(done), humanBytes(total), humanBytes(int64(rate)), eta)
}

func (b *progressBar) done() {
	if b.on && b.printed {
		fmt.Fprintln(b.w)
	}
}

func humanBytes(n int64) string { return node.HumanBytes(n) }
