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
// several LoRa frames. It is small enough that every burst (14 frames at
// SF9 under 1 %) completes a session frame: the session's idle timer
// sees only whole frames, and the budget can hold a turn back an hour.
const LinkMTU = 2 << 10

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
	raw      []byte // session stream not yet encoded
	out      []byte // encoded stream not yet cut into segments
	codec    codec
	stats    LinkStats
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
	// pauseUntil is when the peer said its budget lets it speak again.
	pauseUntil time.Time
	// silent is set when this end took the turn because the peer's
	// answer never came.
	silent  bool
	finSent bool
}

// pause sends a PAUSE: an ACK without the turn flag whose index field
// is the seconds until this end's budget lets its turn start (at most
// 65535). The peer waits that long more before it takes the turn.
func (l *Link) pause(ctx context.Context, tc TransferConfig, d time.Duration) error {
	l.mu.Lock()
	p := l.ackFrame(false)
	l.mu.Unlock()
	binary.BigEndian.PutUint16(p[5:], uint16(min(d/time.Second+1, 65535)))
	if err := tc.send(ctx, p); err != nil {
		return err
	}
	l.count(p)
	l.mu.Lock()
	l.stats.Pauses++
	l.mu.Unlock()
	return nil
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
	l.raw = binary.AppendUvarint(l.raw, uint64(len(frame)))
	l.raw = append(l.raw, frame...)
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return nil
}

// Link DATA frames have a shorter header than transfer frames:
//
//	type (0x02 | FlagTurn | FlagAck) | seq (uint16) | [ack (uint16) if FlagAck] | segment
//
// seq is the low 16 bits of the segment's sequence number, ack the low
// 16 bits of the next sequence the sender expects from its peer. A
// segment holds at most SegmentSize bytes, so that a frame with both
// fits in MaxFrame. ACK and FIN frames keep the 7-byte header.
const SegmentSize = MaxFrame - 5 // 246

func linkHeader(typ byte) int {
	if typ&FlagAck != 0 {
		return 5
	}
	return 3
}

func appendSegment(seq uint32, seg []byte) []byte {
	f := append(make([]byte, 0, 3+len(seg)), TypeData, 0, 0)
	binary.BigEndian.PutUint16(f[1:], uint16(seq))
	return append(f, seg...)
}

// parseLinkFrame decodes a Link frame: DATA with the short header, ACK
// and FIN as transfer frames.
func parseLinkFrame(b []byte) (frame, bool) {
	if len(b) < 1 || len(b) > MaxFrame {
		return frame{}, false
	}
	if b[0]&^(FlagTurn|FlagAck) != TypeData {
		if b[0]&FlagAck != 0 {
			return frame{}, false
		}
		f, ok := parseFrame(b)
		return f, ok && (f.typ == TypeAck || f.typ == TypeFin)
	}
	f := frame{typ: TypeData, turn: b[0]&FlagTurn != 0, ack: b[0]&FlagAck != 0}
	h := linkHeader(b[0])
	if len(b) <= h {
		return frame{}, false
	}
	f.seq16 = binary.BigEndian.Uint16(b[1:])
	if f.ack {
		f.ack16 = binary.BigEndian.Uint16(b[3:])
	}
	f.body = b[h:]
	return f, true
}

// recv waits up to d for a valid Link frame.
func (l *Link) recv(ctx context.Context, d time.Duration) (frame, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		p, err := l.c.Modem.Recv(ctx)
		if err != nil {
			return frame{}, err
		}
		if f, ok := parseLinkFrame(p.Data); ok {
			return f, nil
		}
	}
}

// Queue returns the bytes of session frames not yet sent or not yet
// acknowledged by the peer.
func (l *Link) Queue() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.raw) + len(l.out)
	for _, s := range l.order {
		n += len(l.unacked[s])
	}
	return n
}

// LinkStats counts what one end of a Link put on air.
type LinkStats struct {
	DataFrames, AckFrames, FinFrames int
	Resent                           int // DATA frames sent again
	Pauses                           int // PAUSE notices (budget waits)
	// Of the ACK frames: Polls passed an idle turn, AckOnly were a turn's
	// only frame, AckOoo went beside DATA because segments arrived out of
	// order (else the ACK rides the last DATA frame).
	Polls, AckOnly, AckOoo int
	// Airtime is all this end's frames; HeaderAirtime the share of its
	// DATA frames' 7-byte headers (a frame's time on air less that of
	// its body alone); AckAirtime its ACK frames'.
	Airtime, HeaderAirtime, AckAirtime time.Duration
	// SessionBytes is the session stream this end sent, EncodedBytes
	// the same after the compact encoding.
	SessionBytes, EncodedBytes int64
}

// Stats returns what this end put on air so far.
func (l *Link) Stats() LinkStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.stats
	st.SessionBytes, st.EncodedBytes = l.codec.Raw, l.codec.Encoded
	return st
}

func (l *Link) count(f []byte) {
	d := TimeOnAir(l.c.Params, len(f))
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stats.Airtime += d
	switch f[0] &^ (FlagTurn | FlagAck) {
	case TypeData:
		l.stats.DataFrames++
		l.stats.HeaderAirtime += d - TimeOnAir(l.c.Params, len(f)-linkHeader(f[0]))
	case TypeAck:
		l.stats.AckFrames++
		l.stats.AckAirtime += d
	case TypeFin:
		l.stats.FinFrames++
	}
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
	case <-time.After(l.turnWait() * 3):
		l.cancel()
		<-l.done
		// The turn did not come back (its frame lost, or the peer gone):
		// if all was delivered, send FIN out of turn, so that a living
		// peer ends now rather than after an hour of silence.
		l.mu.Lock()
		finSent, failed := l.finSent, l.err != nil
		sent := len(l.raw) == 0 && len(l.out) == 0 && len(l.order) == 0
		l.mu.Unlock()
		if !finSent && !failed && sent {
			// Only if the budget allows it now: Close does not wait.
			f := appendFrame(nil, TypeFin, true, 0, 0, nil)
			d, now := TimeOnAir(l.c.Params, len(f)), time.Now()
			if start, err := l.c.Budget.Earliest(now, d); err == nil && !start.After(now) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				l.c.Budget.Record(now, d)
				if l.c.Modem.Send(ctx, f) == nil {
					l.count(f)
				}
				cancel()
			}
		}
	}
	return nil
}

// Abort stops the link at once, without FIN: for a process shutting
// down, which cannot wait for the turn to come back.
func (l *Link) Abort() {
	l.mu.Lock()
	l.closing = true
	l.cond.Broadcast()
	l.mu.Unlock()
	l.cancel()
	<-l.done
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

// silence is how long a Link hears nothing before it gives up on the
// peer: 30 turns, or with a duty cycle at least two of the budget's
// windows and 4 turns, for a peer whose budget ran out may be silent a
// window long (its PAUSE notice lost) while this end's own budget kept
// it from listening.
func (l *Link) silence() time.Duration {
	d := 30 * l.turnWait()
	if l.c.Budget != nil {
		d = max(d, 2*l.c.Budget.window+4*l.turnWait())
	}
	return d
}

// maxPoll bounds the interval of an idle holder's polls: 8 s, or under a
// duty cycle long enough that polls use at most a quarter of the budget
// (about 50 s at SF9 under 1 %).
func (l *Link) maxPoll() time.Duration {
	d := 8 * time.Second
	if b := l.c.Budget; b != nil {
		d = max(d, time.Duration(4*float64(TimeOnAir(l.c.Params, HeaderSize+1))*float64(b.window)/float64(b.limit)))
	}
	return d
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
		if _, err := l.recv(ctx, time.Millisecond); err != nil {
			break
		}
	}
	heard := false
	holder := l.c.Initiator
	poll := time.Second
	misses, lastHeard := 0, time.Now()
	for {
		if holder {
			l.mu.Lock()
			onlyAck := l.needAck && len(l.raw) == 0 && len(l.out) == 0 && len(l.order) == 0 && !l.closing
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
					poll = min(2*poll, l.maxPoll())
					l.mu.Lock()
					frames = [][]byte{l.ackFrame(true)}
					l.stats.Polls++
					l.mu.Unlock()
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
			if start, err := l.c.Budget.Earliest(time.Now(), need); err == nil && time.Until(start) > l.turnWait() {
				// The budget holds this turn back for longer than the peer
				// waits for a turn: say so, or it would take the turn, poll
				// into the silence and give up on a living peer.
				if err := l.pause(ctx, tc, time.Until(start)); err != nil {
					l.fail(fmt.Errorf("lora: link: %w", err))
					return
				}
			}
			if err := l.c.Budget.Wait(ctx, need); err != nil {
				return
			}
			// Frames heard while the budget held this turn back answer an
			// earlier one (the peer took the turn after our silence): take
			// in what they carry, but not their turn flag, or one of them,
			// read after this turn, would pass for the peer's answer.
			for {
				f, err := l.recv(ctx, time.Millisecond)
				if err != nil {
					break
				}
				if f.typ == TypeFin {
					if !heard {
						continue // a previous link's
					}
					l.handle(f)
					break
				}
				heard = true
				l.handle(f)
			}
			for _, f := range frames {
				if err := tc.send(ctx, f); err != nil {
					l.fail(fmt.Errorf("lora: link: %w", err))
					return
				}
				l.count(f)
			}
			l.mu.Lock()
			l.silent = false
			l.mu.Unlock()
			if fin {
				l.mu.Lock()
				l.finSent = true
				l.mu.Unlock()
				return
			}
			holder = false
			continue
		}
		// Polls into a long silence back off (each costs airtime), up to
		// 64 turns.
		wait := l.turnWait() << min(max(misses-2, 0), 6)
		if !l.c.Initiator {
			wait += 5 * time.Second
		}
		l.mu.Lock()
		if d := time.Until(l.pauseUntil); d > 0 {
			wait += d
		}
		l.mu.Unlock()
		f, err := l.recv(ctx, wait)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				l.fail(fmt.Errorf("lora: link: %w", err))
				return
			}
			misses++
			if d := time.Since(lastHeard); d > l.silence() {
				l.fail(fmt.Errorf("%w: nothing heard for %v", ErrNoPeer, d.Round(time.Second)))
				return
			}
			holder = true
			l.mu.Lock()
			l.silent = true
			l.mu.Unlock()
			continue
		}
		misses, lastHeard = 0, time.Now()
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
		if !f.turn && f.index > 0 {
			l.pauseUntil = time.Now().Add(time.Duration(f.index) * time.Second)
		}
		l.acked(f.id, f.body)
	case TypeData:
		if f.ack {
			// The low 16 bits of the peer's next expected sequence, at
			// most a window behind the next one this end numbers.
			l.acked(l.nextSeq-uint32(uint16(l.nextSeq)-f.ack16), nil)
		}
		// The segment's sequence from its low 16 bits: within a window
		// (8·244 segments) of the next one expected.
		f.id = l.recvNext + uint32(int32(int16(f.seq16-uint16(l.recvNext))))
		l.data(f)
	}
	return false
}

// acked drops the segments an ACK covers: those before cum, and those
// its bitmap marks (bit k: sequence cum+1+k).
func (l *Link) acked(cum uint32, bm []byte) {
	{
		for _, s := range l.order {
			k := int(s) - int(cum) - 1
			if s < cum || (k >= 0 && k/8 < len(bm) && bm[k/8]&(1<<(k%8)) != 0) {
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
	}
}

// data takes in one DATA segment.
func (l *Link) data(f frame) {
	{
		l.needAck = true
		if f.id < l.recvNext {
			return
		}
		l.ooo[f.id] = append([]byte(nil), f.body...)
		for {
			b, ok := l.ooo[l.recvNext]
			if !ok {
				break
			}
			delete(l.ooo, l.recvNext)
			l.recvNext++
			raw, err := l.codec.decode(b)
			if err != nil {
				l.err = err
				l.cond.Broadcast()
				return
			}
			l.in = append(l.in, raw...)
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
	// A turn taken after silence resends nothing: what the peer holds
	// is unknown until its next ACK, which this turn asks for.
	for _, s := range l.order {
		if len(frames) >= burst || l.silent {
			break
		}
		frames = append(frames, appendSegment(s, l.unacked[s]))
		l.stats.Resent++
	}
	for len(l.raw) > 0 && len(l.out) < burst*SegmentSize {
		n := min(len(l.raw), chunkRaw)
		l.out = append(l.out, l.codec.encode(l.raw[:n])...)
		l.raw = l.raw[n:]
	}
	for len(l.out) > 0 && len(frames) < burst && len(l.order) < 8*FragmentSize {
		n := min(len(l.out), SegmentSize)
		seg := append([]byte(nil), l.out[:n]...)
		l.out = l.out[n:]
		s := l.nextSeq
		l.nextSeq++
		l.unacked[s] = seg
		l.order = append(l.order, s)
		frames = append(frames, appendSegment(s, seg))
	}
	// The ACK goes last, on the frame that passes the turn, so that the
	// peer holds the turn only if it heard the ACK. With nothing out of
	// order it rides the last DATA frame (FlagAck), else a frame of its own.
	if l.needAck {
		if n := len(frames); n > 0 && frames[n-1][0] == TypeData && len(l.ooo) == 0 {
			f := frames[n-1]
			g := append(append(append([]byte{TypeData | FlagAck}, f[1:3]...), 0, 0), f[3:]...)
			binary.BigEndian.PutUint16(g[3:], uint16(l.recvNext))
			frames[n-1] = g
			l.needAck = false
		} else {
			frames = append(frames, l.ackFrame(false))
			if len(frames) == 1 {
				l.stats.AckOnly++
			} else {
				l.stats.AckOoo++
			}
		}
	}
	if l.closing && len(l.raw) == 0 && len(l.out) == 0 && len(l.order) == 0 {
		frames = append(frames, appendFrame(nil, TypeFin, true, 0, 0, nil))
		return frames, true
	}
	if len(frames) > 0 {
		frames[len(frames)-1][0] |= FlagTurn
	}
	return frames, false
}
