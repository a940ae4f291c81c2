package lora

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"ferry/carriers"
)

// TypeFin ends a Link in order: the peer's Recv returns io.EOF after the
// data before it.
const TypeFin = 0x04

// linger is how long a holder with only an ACK to send waits for the
// session's answer.
const linger = 300 * time.Millisecond

// LinkMTU is the largest session frame a Link carries; frames span
// several LoRa frames.
const LinkMTU = 8 << 10

// LinkConfig sets up one end of a Link.
type LinkConfig struct {
	Modem  Modem
	Params Params
	Budget *Budget // nil: no duty cycle
	// Initiator holds the first turn; exactly one end must set it.
	Initiator bool
	// Burst bounds the frames of one turn; 0 sizes it as for transfers.
	Burst  int
	Remote string
}

// A Link runs carriers' session protocol over a half-duplex LoRa modem:
// the session's frames become a byte stream (uvarint length, bytes) cut
// into numbered segments of up to 244 bytes. The ends take turns: the
// holder sends an ACK of what it received (cumulative sequence and a
// selective bitmap), the segments the peer's last ACK did not cover,
// then new ones, the last frame carrying the turn flag. An idle holder
// passes the turn with an empty ACK after a poll interval that doubles
// up to 8 s; an end that hears nothing for a turn's wait takes the turn
// (the initiator sooner, so that both do not).
//
// Segment frames use the transfer header: DATA's ID field is the
// segment's sequence number; ACK's ID field is the next sequence
// expected, its body a bitmap of the sequences after it that arrived.
type Link struct {
	c    LinkConfig
	info carriers.LinkInfo

	mu       sync.Mutex
	cond     *sync.Cond
	out      []byte            // stream not yet cut into segments
	unacked  map[uint32][]byte // sent, not acknowledged
	order    []uint32          // unacked in sequence order
	nextSeq  uint32
	recvNext uint32
	ooo      map[uint32][]byte
	needAck  bool
	in       []byte   // in-order stream not yet framed
	frames   [][]byte // framed, for Recv
	peerFin  bool
	closing  bool
	err      error
	kick     chan struct{}
	done     chan struct{}
	cancel   context.CancelFunc
	cur      []byte
}

var _ carriers.Link = (*Link)(nil)

// NewLink starts a Link on c.Modem. Close stops it.
func NewLink(c LinkConfig) *Link {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Link{c: c, unacked: map[uint32][]byte{}, ooo: map[uint32][]byte{},
		kick: make(chan struct{}, 1), done: make(chan struct{}), cancel: cancel}
	l.cond = sync.NewCond(&l.mu)
	rate := int64(c.Params.Rate()) // bytes per second on air
	if c.Budget != nil {
		rate = int64(c.Params.Rate() * float64(c.Budget.Limit()) / float64(time.Hour))
	}
	l.info = carriers.LinkInfo{Medium: "lora", MTU: LinkMTU, Rate: max(rate, 1), Remote: c.Remote}
	go l.run(ctx)
	return l
}

// Info describes the link.
func (l *Link) Info() carriers.LinkInfo { return l.info }

// Send queues frame for the peer.
func (l *Link) Send(frame []byte) error {
	if len(frame) > LinkMTU {
		return fmt.Errorf("%w: %d bytes, MTU %d", carriers.ErrFrameTooLarge, len(frame), LinkMTU)
	}
	l.mu.Lock()
	if l.closing || l.err != nil {
		err := l.err
		l.mu.Unlock()
		if err == nil {
			err = io.ErrClosedPipe
		}
		return err
	}
	l.out = binary.AppendUvarint(l.out, uint64(len(frame)))
	l.out = append(l.out, frame...)
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return nil
}

// Queue returns the bytes of session frames not yet sent or not yet
// acknowledged by the peer.
func (l *Link) Queue() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.out)
	for _, s := range l.order {
		n += len(l.unacked[s])
	}
	return n
}

// Recv returns the next frame from the peer.
func (l *Link) Recv() ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.frames) == 0 {
		switch {
		case l.closing:
			return nil, io.ErrClosedPipe
		case l.err != nil:
			return nil, l.err
		case l.peerFin:
			return nil, io.EOF
		}
		l.cond.Wait()
	}
	l.cur = l.frames[0]
	l.frames = l.frames[1:]
	return l.cur, nil
}

// Close stops the link: it sends what is queued (within a few turns),
// then FIN, and makes Send and Recv return.
func (l *Link) Close() error {
	l.mu.Lock()
	l.closing = true
	l.cond.Broadcast()
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
	select {
	case <-l.done:
	case <-time.After(l.turnWait() * 2):
		l.cancel()
		<-l.done
	}
	return nil
}

func (l *Link) burst() int {
	if l.c.Burst > 0 {
		return l.c.Burst
	}
	tc := TransferConfig{Params: l.c.Params, Budget: l.c.Budget}
	return tc.burst()
}

func (l *Link) turnWait() time.Duration {
	return time.Duration(l.burst()+2)*TimeOnAir(l.c.Params, MaxFrame) + 3*time.Second
}

func (l *Link) fail(err error) {
	l.mu.Lock()
	if l.err == nil {
		l.err = err
	}
	l.cond.Broadcast()
	l.mu.Unlock()
}

func (l *Link) run(ctx context.Context) {
	defer close(l.done)
	defer l.cancel()
	tc := TransferConfig{Modem: l.c.Modem, Params: l.c.Params, Budget: l.c.Budget}
	// Frames the modem holds from before this link (a previous link's
	// late FIN) are not ours.
	for {
		if _, err := tc.recv(ctx, time.Millisecond); err != nil {
			break
		}
	}
	heard := false
	holder := l.c.Initiator
	poll := time.Second
	misses := 0
	for {
		if holder {
			l.mu.Lock()
			onlyAck := l.needAck && len(l.out) == 0 && len(l.order) == 0 && !l.closing
			l.mu.Unlock()
			if onlyAck {
				// Let the session answer what just arrived, so that the
				// answer rides this turn instead of the next.
				select {
				case <-l.kick:
				case <-time.After(linger):
				case <-ctx.Done():
					return
				}
			}
			frames, fin := l.turn()
			if len(frames) == 0 {
				select {
				case <-l.kick:
					continue
				case <-time.After(poll):
					poll = min(2*poll, 8*time.Second)
					frames = [][]byte{l.ackFrame(true)}
				case <-ctx.Done():
					return
				}
			} else {
				poll = time.Second
			}
			var need time.Duration
			for _, f := range frames {
				need += TimeOnAir(l.c.Params, len(f))
			}
			if err := l.c.Budget.Wait(ctx, need); err != nil {
				return
			}
			for _, f := range frames {
				if err := tc.send(ctx, f); err != nil {
					l.fail(fmt.Errorf("lora: link: %w", err))
					return
				}
			}
			if fin {
				return
			}
			holder = false
			continue
		}
		wait := l.turnWait()
		if !l.c.Initiator {
			wait += 5 * time.Second
		}
		f, err := tc.recv(ctx, wait)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				l.fail(fmt.Errorf("lora: link: %w", err))
				return
			}
			misses++
			if misses > 30 {
				l.fail(fmt.Errorf("%w: nothing heard for %d turns", ErrNoPeer, misses))
				return
			}
			holder = true
			continue
		}
		misses = 0
		if f.typ == TypeFin && !heard {
			continue // a FIN before anything else is a previous link's
		}
		heard = true
		if l.handle(f) {
			return
		}
		holder = f.turn
	}
}

// handle takes in one frame; it reports the peer's FIN.
func (l *Link) handle(f frame) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch f.typ {
	case TypeFin:
		l.peerFin = true
		l.cond.Broadcast()
		return false
	case TypeAck:
		cum := f.id
		for _, s := range l.order {
			k := int(s) - int(cum) - 1
			if s < cum || (k >= 0 && k/8 < len(f.body) && f.body[k/8]&(1<<(k%8)) != 0) {
				delete(l.unacked, s)
			}
		}
		keep := l.order[:0]
		for _, s := range l.order {
			if _, ok := l.unacked[s]; ok {
				keep = append(keep, s)
			}
		}
		l.order = keep
	case TypeData:
		l.needAck = true
		if f.id < l.recvNext {
			return false
		}
		l.ooo[f.id] = append([]byte(nil), f.body...)
		for {
			b, ok := l.ooo[l.recvNext]
			if !ok {
				break
			}
			delete(l.ooo, l.recvNext)
			l.recvNext++
			l.in = append(l.in, b...)
		}
		for {
			n, k := binary.Uvarint(l.in)
			if k <= 0 || uint64(len(l.in)-k) < n {
				if k < 0 || n > LinkMTU {
					l.err = fmt.Errorf("%w: %d bytes", carriers.ErrFrameTooLarge, n)
				}
				break
			}
			l.frames = append(l.frames, append([]byte(nil), l.in[k:k+int(n)]...))
			l.in = l.in[k+int(n):]
		}
		l.cond.Broadcast()
	}
	return false
}

func (l *Link) ackFrame(turn bool) []byte {
	bm := make([]byte, 1, 8)
	for s := range l.ooo {
		k := int(s - l.recvNext - 1)
		if k >= 0 && k < 8*FragmentSize {
			for len(bm) <= k/8 {
				bm = append(bm, 0)
			}
			bm[k/8] |= 1 << (k % 8)
		}
	}
	l.needAck = false
	return appendFrame(nil, TypeAck, turn, l.recvNext, 0, bm)
}

// turn returns the frames of this end's turn, the last flagged.
func (l *Link) turn() (frames [][]byte, fin bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	burst := l.burst()
	if l.needAck {
		frames = append(frames, l.ackFrame(false))
	}
	for _, s := range l.order {
		if len(frames) >= burst {
			break
		}
		frames = append(frames, appendFrame(nil, TypeData, false, s, 0, l.unacked[s]))
	}
	for len(l.out) > 0 && len(frames) < burst && len(l.order) < 8*FragmentSize {
		n := min(len(l.out), FragmentSize)
		seg := append([]byte(nil), l.out[:n]...)
		l.out = l.out[n:]
		s := l.nextSeq
		l.nextSeq++
		l.unacked[s] = seg
		l.order = append(l.order, s)
		frames = append(frames, appendFrame(nil, TypeData, false, s, 0, seg))
	}
	if l.closing && len(l.out) == 0 && len(l.order) == 0 {
		frames = append(frames, appendFrame(nil, TypeFin, true, 0, 0, nil))
		return frames, true
	}
	if len(frames) > 0 {
		frames[len(frames)-1][0] |= FlagTurn
	}
	return frames, false
}
