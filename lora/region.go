package lora

import (
	"fmt"
	"time"
)

// A Region is the law a transmitter obeys: a duty cycle over a sliding
// window, a dwell limit per frame, or both.
type Region struct {
	Name string
	// DutyCycle is the share of each Window a transmitter may be on
	// air, such as 0.01; 0 means no duty-cycle limit.
	DutyCycle float64
	// Window is the sliding window the duty cycle is counted over: an
	// hour in EU868 (ETSI EN 300 220 counts it over one hour).
	Window time.Duration
	// Dwell is the longest one frame may stay on air; 0 means no limit.
	Dwell time.Duration
	// MinFreq and MaxFreq bound the frequencies the rule applies to, in Hz.
	MinFreq, MaxFreq int64
}

// The regions ferry knows.
var (
	// EU868 is the g/g1 band (868.0–868.6 MHz) at 1 % duty cycle.
	EU868 = Region{Name: "eu868", DutyCycle: 0.01, Window: time.Hour, MinFreq: 863_000_000, MaxFreq: 869_400_000}
	// EU868Sub10 is the g3 sub-band, 869.4–869.65 MHz, at 10 % duty cycle.
	EU868Sub10 = Region{Name: "eu868-10", DutyCycle: 0.10, Window: time.Hour, MinFreq: 869_400_000, MaxFreq: 869_650_000}
	// US915 limits each frame to 400 ms of dwell and counts no duty cycle.
	US915 = Region{Name: "us915", Dwell: 400 * time.Millisecond, MinFreq: 902_000_000, MaxFreq: 928_000_000}
)

// RegionByName returns the region named name ("eu868", "eu868-10", "us915").
func RegionByName(name string) (Region, error) {
	for _, r := range []Region{EU868, EU868Sub10, US915} {
		if r.Name == name {
			return r, nil
		}
	}
	return Region{}, fmt.Errorf("lora: unknown region %q (want eu868, eu868-10 or us915)", name)
}

// Budget returns the airtime the region allows per window, or 0 if it
// has no duty cycle.
func (r Region) Budget() time.Duration {
	return time.Duration(r.DutyCycle * float64(r.Window))
}

// Check refuses settings that break the region: a frequency outside it,
// or a frame of n bytes that would dwell too long.
func (r Region) Check(p Params, n int) error {
	if p.Frequency != 0 && (p.Frequency < r.MinFreq || p.Frequency > r.MaxFreq) {
		return fmt.Errorf("lora: %d Hz outside region %s (%d..%d Hz)", p.Frequency, r.Name, r.MinFreq, r.MaxFreq)
	}
	if r.Dwell > 0 {
		if t := TimeOnAir(p, n); t > r.Dwell {
			return fmt.Errorf("lora: a %d-byte frame at SF%d takes %v on air, over %s's dwell of %v", n, p.SF, t, r.Name, r.Dwell)
		}
	}
	return nil
}

// MaxPayload returns the largest frame, at most MaxFrame bytes, that the
// region allows with settings p, or 0 if even an empty frame dwells too
// long (US915 at SF11 and SF12 on 125 kHz).
func (r Region) MaxPayload(p Params) int {
	if r.Dwell == 0 {
		return MaxFrame
	}
	n := MaxFrame
	for n >= 0 && TimeOnAir(p, n) > r.Dwell {
		n--
	}
	return max(n, 0)
}
