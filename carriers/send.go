package carriers

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"ferry/bundle"
	"ferry/node"
)

// sendJob is what the writer streams between control messages: a wanted
// bundle from a byte on, or the end of a round.
type sendJob struct {
	xfer   int
	id     bundle.ID
	offset int64
	size   int64
	end    int // > 0: send the end of this round
}

// writer owns the sending side of the link. Control messages go out as
// soon as they are queued; between them it streams the wanted bundles in
// the order they were wanted, one frame at a time, so that a control
// message never waits behind a whole bundle.
type writer struct {
	s    *session
	mu   sync.Mutex
	ctrl [][]byte
	work []sendJob
	wake chan struct{}
	// drain: send what control messages are queued, drop the rest, stop.
	drain  bool
	quiet  bool // no pings: the session said goodbye
	exited chan struct{}
}

func newWriter(s *session) *writer {
	return &writer{s: s, wake: make(chan struct{}, 1), exited: make(chan struct{})}
}

// wait waits up to d for the writer to return.
func (w *writer) wait(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.exited:
	case <-t.C:
	}
}

func (w *writer) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// message queues a control message.
func (w *writer) message(t FrameType, body []byte) {
	fs := frames(t, body, w.s.info.MTU)
	w.mu.Lock()
	w.ctrl = append(w.ctrl, fs...)
	if t == FrameBye || t == FrameRefuse {
		w.quiet = true
	}
	w.mu.Unlock()
	w.signal()
}

// jobs queues transfers and round ends.
func (w *writer) jobs(js ...sendJob) {
	w.mu.Lock()
	w.work = append(w.work, js...)
	w.mu.Unlock()
	w.signal()
}

// stop makes the writer send the control messages queued and return.
func (w *writer) stop() {
	w.mu.Lock()
	w.drain = true
	w.mu.Unlock()
	w.signal()
}

// run sends until stopped or the link fails.
func (w *writer) run(ctx context.Context) {
	defer close(w.exited)
	var cur *sendJob
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	ping := time.NewTicker(pingInterval(w.s.opts.Idle, w.s.info.Rate))
	defer ping.Stop()
	buf := make([]byte, w.s.info.MTU)
	for {
		w.mu.Lock()
		if len(w.ctrl) > 0 {
			fr := w.ctrl[0]
			w.ctrl = w.ctrl[1:]
			w.mu.Unlock()
			if err := w.s.send(fr); err != nil {
				w.s.event(event{err: err, sending: true})
				return
			}
			continue
		}
		if w.drain {
			w.mu.Unlock()
			return
		}
		if cur == nil && len(w.work) > 0 {
			j := w.work[0]
			w.work = w.work[1:]
			w.mu.Unlock()
			if j.end > 0 {
				if err := w.s.send(frames(FrameEnd, binary.AppendUvarint(nil, uint64(j.end)), w.s.info.MTU)[0]); err != nil {
					w.s.event(event{err: err, sending: true})
					return
				}
				w.s.event(event{endSent: j.end})
				continue
			}
			var err error
			if f, err = w.open(j); err != nil {
				w.s.log.Warn("cannot send a wanted bundle", "bundle", j.id, "err", err)
				if err := w.s.send(frames(FrameSkip, binary.AppendUvarint(nil, uint64(j.xfer)), w.s.info.MTU)[0]); err != nil {
					w.s.event(event{err: err, sending: true})
					return
				}
				continue
			}
			cur = &j
			continue
		}
		if cur != nil {
			w.mu.Unlock()
			done, err := w.chunk(cur, f, buf)
			if err != nil {
				w.s.event(event{err: err, sending: true})
				return
			}
			if done {
				f.Close()
				f, cur = nil, nil
			}
			continue
		}
		quiet := w.quiet
		w.mu.Unlock()
		select {
		case <-w.wake:
		case <-ping.C:
			if !quiet {
				if err := w.s.send([]byte{byte(FramePing)}); err != nil {
					w.s.event(event{err: err, sending: true})
					return
				}
			}
		case <-ctx.Done():
			return
		}
	}
}

func (w *writer) open(j sendJob) (*os.File, error) {
	f, err := w.s.n.OpenBundle(j.id)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() != j.size {
		err = fmt.Errorf("spooled body of %d bytes, offered %d", fi.Size(), j.size)
	}
	if err == nil {
		_, err = f.Seek(j.offset, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// chunk sends the next frame of a transfer and reports whether the
// transfer is complete.
func (w *writer) chunk(j *sendJob, f *os.File, buf []byte) (bool, error) {
	b := append(buf[:0], byte(FrameData))
	b = binary.AppendUvarint(b, uint64(j.xfer))
	b = binary.AppendUvarint(b, uint64(j.offset))
	room := w.s.info.MTU - 1 - uvarintLen(uint64(j.xfer)) - uvarintLen(uint64(j.size))
	n := int(min(int64(room), j.size-j.offset))
	k, err := io.ReadFull(f, buf[len(b):len(b)+n])
	if err != nil {
		return false, fmt.Errorf("carriers: read spooled bundle %s: %w", j.id, err)
	}
	if err := w.s.send(buf[:len(b)+k]); err != nil {
		return false, err
	}
	j.offset += int64(k)
	w.s.dataSent.Add(int64(k))
	return j.offset == j.size, nil
}

// pingInterval is how long an idle writer waits before a ping: a third of
// the idle deadline, and at most a second on a fast link, so that a new
// session can tell a live session with the same peer from a dead one
// (claims.go) without costing a slow radio link its airtime.
func pingInterval(idle time.Duration, rate int64) time.Duration {
	d := idle / 3
	if rate == 0 || rate >= 100_000 {
		d = min(d, time.Second)
	}
	return max(d, 10*time.Millisecond)
}

// outgoing is a bundle the peer wanted.
type outgoing struct {
	item   offerItem
	offset int64
}

// offers lists what this node accounts for and the peer lacks, that it
// has not offered in this session, most urgent first, with what the send
// quota does not cover withheld.
func (s *session) offers(ctx context.Context, vec node.Vector) ([]offerItem, error) {
	var items []offerItem
	for _, o := range vec {
		rs := s.peer.missing(o.Origin, o.Max)
		if len(rs) > maxRangeQueries {
			rs = []node.Range{{Lo: rs[0].Lo, Hi: rs[len(rs)-1].Hi}}
		}
		for _, r := range rs {
			es, err := s.n.Entries(ctx, o.Origin, r.Lo, min(r.Hi, maxSeq))
			if err != nil {
				return nil, err
			}
			for _, e := range es {
				ref := seqRef{e.Source, e.Seq}
				if s.peer.has(e.Source, e.Seq) || s.offered[ref] {
					continue
				}
				items = append(items, offerItem{Entry: e, status: statusOf(&e)})
			}
		}
	}
	sortOffer(items)
	items, err := s.route(ctx, items)
	if err != nil {
		return nil, err
	}
	budget := s.opts.MaxSend
	for i := range items {
		it := &items[i]
		s.offered[it.ref()] = true
		if it.status != offerAvailable {
			continue
		}
		if s.opts.MaxSend > 0 {
			if it.Size > budget {
				it.status = offerWithheld
				continue
			}
			budget -= it.Size
		}
	}
	return items, nil
}

// maxRangeQueries bounds the store queries one origin's offer takes;
// with more missing ranges the origin is read whole and filtered.
const maxRangeQueries = 64

// sendOffer computes and sends the offer of a round.
func (s *session) sendOffer(ctx context.Context, round int, vec node.Vector) error {
	items, err := s.offers(ctx, vec)
	if err != nil {
		return err
	}
	s.myOffer[round] = items
	s.w.message(FrameOffer, encodeOffer(round, items))
	if len(items) == 0 {
		s.w.jobs(sendJob{end: round})
	}
	for _, it := range items {
		if it.status == offerWithheld {
			s.rep.Left++
			s.rep.LeftBytes += it.Size
		}
	}
	return nil
}

// onWant queues the bundles the peer wants from this round's offer.
func (s *session) onWant(m *message) error {
	round, ws, err := parseWant(m, len(s.myOffer[s.round]))
	if err != nil {
		return err
	}
	if round != s.round || s.wanted[round] || len(s.myOffer[round]) == 0 {
		return protocolError("want of round %d out of place", round)
	}
	s.wanted[round] = true
	var jobs []sendJob
	for _, w := range ws {
		it := s.myOffer[round][w.index]
		if it.status != offerAvailable {
			return protocolError("want of a bundle not offered as available")
		}
		offset := w.offset
		if offset > 0 && (offset >= it.Size || [8]byte(it.ID[:8]) != w.id) {
			offset = 0 // not the bundle the peer began: start again
		}
		if offset > 0 {
			s.rep.Sent.Resumed++
			s.rep.Sent.ResumedBytes += offset
		}
		x := s.nextOut
		s.nextOut++
		s.out[x] = &outgoing{item: it, offset: offset}
		jobs = append(jobs, sendJob{xfer: x, id: it.ID, offset: offset, size: it.Size})
		s.totalOut += it.Size - offset
	}
	jobs = append(jobs, sendJob{end: round})
	s.w.jobs(jobs...)
	return nil
}

// onGot records that the peer took in a bundle this node sent.
func (s *session) onGot(m *message) error {
	r := newReader(m)
	x := r.uvarint()
	status := r.byte()
	if err := r.end(); err != nil {
		return err
	}
	o := s.out[int(x)]
	if x > uint64(s.nextOut) || o == nil {
		return protocolError("got of a bundle not sent")
	}
	delete(s.out, int(x))
	s.learned[o.item.ref()] = true
	s.rep.Sent.Bundles++
	if status == gotExpired {
		return nil
	}
	s.carried = append(s.carried, o.item.ID)
	if o.item.Dest.Type == bundle.DestNode && bundle.NodeID(o.item.Dest.ID) == s.hi.id {
		// The peer is the destination and has the bundle: nobody needs
		// it from this node any more.
		s.settle = append(s.settle, o.item.ID)
	}
	return nil
}

// Got statuses. Wire constants.
const (
	gotApplied   = 0x01
	gotStored    = 0x02
	gotDuplicate = 0x03
	gotExpired   = 0x04 // it expired on the way; nothing kept
)

// flushCustody records the bundles the peer took in: custody, the
// messages' "carried" state, and the bodies its destination now holds.
func (s *session) flushCustody(ctx context.Context) error {
	if len(s.carried) > 0 {
		if err := s.n.MarkCarried(ctx, s.hi.id, s.info.Medium, s.carried); err != nil {
			return err
		}
		s.carried = nil
	}
	if len(s.settle) > 0 {
		if err := s.n.Settled(ctx, s.settle); err != nil {
			return err
		}
		s.rep.Settled += len(s.settle)
		s.settle = nil
	}
	if len(s.know) > 0 {
		if err := s.n.Know(ctx, s.know); err != nil {
			return err
		}
		s.know = nil
	}
	return nil
}

var errSendClosed = errors.New("carriers: link closed")
