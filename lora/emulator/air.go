// Package emulator models LoRa radios sharing a channel, for tests and
// demos: time on air, half duplex, collisions, random and bursty loss,
// and the airtime lock of RNode firmware. Radios are reached in process
// ([Air.Modem], a [lora.Modem] of channels) or through a pseudo-terminal
// whose master side the emulator holds ([Air.OpenPTY]) so that a driver
// opens a real tty with github.com/tarm/serial and speaks RNode KISS or
// rf95modem AT commands.
//
// The clock is the time package's: under testing/synctest it is virtual
// and an hour of airtime passes in milliseconds (in-process modems only:
// a goroutine blocked reading a pty is not durably blocked, so pty tests
// run on the real clock with fast radio settings).
package emulator

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"ferry/lora"
)

// A LossModel decides whether a frame is lost on its way to one receiver.
type LossModel interface {
	Lost(rng *rand.Rand) bool
}

// Random loses each frame with probability P.
type Random struct{ P float64 }

// Lost reports a loss with probability P.
func (r Random) Lost(rng *rand.Rand) bool { return rng.Float64() < r.P }

// GilbertElliott is a two-state burst-loss model: in the good state a
// frame is lost with probability LossGood, in the bad with LossBad; after
// each frame the channel turns bad with probability PGB and good again
// with PBG. Its long-run loss rate is
// (PBG·LossGood + PGB·LossBad) / (PGB + PBG).
type GilbertElliott struct {
	PGB, PBG          float64
	LossGood, LossBad float64
	mu                sync.Mutex
	bad               bool
}

// Bursty returns a Gilbert–Elliott model losing a share rate of frames in
// bursts of mean length burst frames (bad state loses all).
func Bursty(rate, burst float64) *GilbertElliott {
	pbg := 1 / burst
	return &GilbertElliott{PBG: pbg, PGB: rate * pbg / (1 - rate), LossBad: 1}
}

// Lost steps the chain and reports a loss.
func (g *GilbertElliott) Lost(rng *rand.Rand) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.LossGood
	if g.bad {
		p = g.LossBad
	}
	lost := rng.Float64() < p
	if g.bad {
		g.bad = rng.Float64() >= g.PBG
	} else {
		g.bad = rng.Float64() < g.PGB
	}
	return lost
}

// Config sets up an Air.
type Config struct {
	Loss LossModel // nil: no loss
	Seed uint64
	RSSI int     // reported for every frame; 0 means −90 dBm
	SNR  float64 // reported; 0 means 7.5 dB
}

// Air is a shared LoRa channel.
type Air struct {
	cfg    Config
	mu     sync.Mutex
	rng    *rand.Rand
	radios []*Radio
	txs    []*transmission // recent, for collisions and half duplex
	counts Counts
}

// Counts are what happened to frames on the air, per receiver.
type Counts struct {
	Delivered, Lost, Collided, HalfDuplex int
}

// Counts returns what happened to frames so far.
func (a *Air) Counts() Counts {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.counts
}

type transmission struct {
	from       *Radio
	start, end time.Time
	params     lora.Params
	collided   bool
}

// New returns an empty channel.
func New(cfg Config) *Air {
	if cfg.RSSI == 0 {
		cfg.RSSI = -90
	}
	if cfg.SNR == 0 {
		cfg.SNR = 7.5
	}
	return &Air{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x1a2b))}
}

// A Radio is one modem on the air. Frames it is given are transmitted
// one at a time, each after the previous one left the air and once the
// airtime lock allows.
type Radio struct {
	air  *Air
	Name string

	mu       sync.Mutex
	params   lora.Params
	on       bool
	stLock   *lora.Budget // RNode short-term airtime lock (15 s)
	ltLock   *lora.Budget // long-term (1 h)
	airtime  time.Duration
	log      []onAir // every transmission, in order
	queue    chan []byte
	rx       chan lora.Packet
	done     chan struct{}
	stopOnce sync.Once
}

// NewRadio adds a radio with settings p, switched on.
func (a *Air) NewRadio(name string, p lora.Params) *Radio {
	r := &Radio{air: a, Name: name, params: p, on: true,
		queue: make(chan []byte, 64), rx: make(chan lora.Packet, 256), done: make(chan struct{})}
	a.mu.Lock()
	a.radios = append(a.radios, r)
	a.mu.Unlock()
	go r.transmitLoop()
	return r
}

// SetParams changes the radio settings.
func (r *Radio) SetParams(p lora.Params) { r.mu.Lock(); r.params = p; r.mu.Unlock() }

// Params returns the radio settings.
func (r *Radio) Params() lora.Params { r.mu.Lock(); defer r.mu.Unlock(); return r.params }

// SetOn switches the receiver and transmitter.
func (r *Radio) SetOn(on bool) { r.mu.Lock(); r.on = on; r.mu.Unlock() }

// SetAirtimeLock limits the radio to share (0.01 = 1 %) of air over 15 s
// and over an hour; 0 lifts the lock. Frames wait until they fit.
func (r *Radio) SetAirtimeLock(st, lt float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stLock = lora.NewBudget(lora.Region{DutyCycle: st, Window: 15 * time.Second})
	r.ltLock = lora.NewBudget(lora.Region{DutyCycle: lt, Window: time.Hour})
}

// Airtime returns the radio's total time on air.
func (r *Radio) Airtime() time.Duration { r.mu.Lock(); defer r.mu.Unlock(); return r.airtime }

// Transmit queues a frame; it returns false if the queue is full.
func (r *Radio) Transmit(frame []byte) bool {
	select {
	case r.queue <- append([]byte(nil), frame...):
		return true
	default:
		return false
	}
}

type onAir struct {
	start time.Time
	d     time.Duration
}

// BusiestWindow returns the most airtime this radio used in any window
// of length w, counting a transmission partly inside it whole (as
// lora.Budget does), and the longest single frame: what tests hold
// against a region's duty cycle and dwell limit.
func (r *Radio) BusiestWindow(w time.Duration) (busiest, longest time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, t := range r.log {
		longest = max(longest, t.d)
		// The busiest window can be taken to end at some frame's end.
		var sum time.Duration
		for j := i; j >= 0 && r.log[j].start.Add(r.log[j].d).After(t.start.Add(t.d).Add(-w)); j-- {
			sum += r.log[j].d
		}
		busiest = max(busiest, sum)
	}
	return busiest, longest
}

// Received is the channel of frames the radio heard.
func (r *Radio) Received() <-chan lora.Packet { return r.rx }

// Stop ends the radio's transmitter.
func (r *Radio) Stop() { r.stopOnce.Do(func() { close(r.done) }) }

func (r *Radio) transmitLoop() {
	for {
		select {
		case f := <-r.queue:
			r.transmit(f)
		case <-r.done:
			return
		}
	}
}

func (r *Radio) transmit(f []byte) {
	r.mu.Lock()
	p, on, st, lt := r.params, r.on, r.stLock, r.ltLock
	r.mu.Unlock()
	if !on {
		return
	}
	d := lora.TimeOnAir(p, len(f))
	for _, b := range []*lora.Budget{st, lt} {
		if b == nil {
			continue
		}
		for {
			at, err := b.Earliest(time.Now(), d)
			if err != nil {
				return // can never fit: the firmware drops it
			}
			if !at.After(time.Now()) {
				break
			}
			select {
			case <-time.After(time.Until(at)):
			case <-r.done:
				return
			}
		}
	}
	now := time.Now()
	st.Record(now, d)
	lt.Record(now, d)
	t := r.air.begin(r, p, now, d)
	r.mu.Lock()
	r.airtime += d
	r.log = append(r.log, onAir{now, d})
	r.mu.Unlock()
	select {
	case <-time.After(d):
	case <-r.done:
		return
	}
	r.air.end(t, f)
}

func overlap(a, b *transmission) bool {
	return a.start.Before(b.end) && b.start.Before(a.end)
}

func (a *Air) begin(r *Radio, p lora.Params, start time.Time, d time.Duration) *transmission {
	a.mu.Lock()
	defer a.mu.Unlock()
	t := &transmission{from: r, start: start, end: start.Add(d), params: p}
	keep := a.txs[:0]
	for _, o := range a.txs {
		if o.end.After(start.Add(-time.Minute)) {
			keep = append(keep, o)
		}
	}
	a.txs = keep
	for _, o := range a.txs {
		if o.from != r && overlap(o, t) && o.params.Frequency == p.Frequency {
			o.collided, t.collided = true, true
		}
	}
	a.txs = append(a.txs, t)
	return t
}

func (a *Air) end(t *transmission, f []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t.collided {
		a.counts.Collided++
		return
	}
	for _, r := range a.radios {
		if r == t.from {
			continue
		}
		r.mu.Lock()
		p, on := r.params, r.on
		r.mu.Unlock()
		if !on || p.SF != t.params.SF || p.Bandwidth != t.params.Bandwidth || p.Frequency != t.params.Frequency {
			continue
		}
		deaf := false
		for _, o := range a.txs {
			if o.from == r && overlap(o, t) {
				deaf = true
			}
		}
		if deaf {
			a.counts.HalfDuplex++
			continue
		}
		if a.cfg.Loss != nil && a.cfg.Loss.Lost(a.rng) {
			a.counts.Lost++
			continue
		}
		a.counts.Delivered++
		select {
		case r.rx <- lora.Packet{Data: append([]byte(nil), f...), RSSI: a.cfg.RSSI, SNR: a.cfg.SNR}:
		default: // receiver overrun
			a.counts.Lost++
		}
	}
}

// Modem returns an in-process modem on a new radio with settings p.
func (a *Air) Modem(name string, p lora.Params) (lora.Modem, *Radio) {
	r := a.NewRadio(name, p)
	return &modem{r: r}, r
}

type modem struct{ r *Radio }

func (m *modem) Send(ctx context.Context, f []byte) error {
	if len(f) == 0 || len(f) > lora.MaxFrame {
		return fmt.Errorf("%w: %d bytes", lora.ErrFrameSize, len(f))
	}
	select {
	case <-m.r.done:
		return lora.ErrClosed
	default:
	}
	if !m.r.Transmit(f) {
		return &lora.ModemError{Modem: "emulator", Code: 0x04, Msg: "queue full"}
	}
	return nil
}

func (m *modem) Recv(ctx context.Context) (lora.Packet, error) {
	select {
	case p := <-m.r.rx:
		return p, nil
	case <-ctx.Done():
		return lora.Packet{}, ctx.Err()
	case <-m.r.done:
		return lora.Packet{}, lora.ErrClosed
	}
}

func (m *modem) Close() error { m.r.Stop(); return nil }
