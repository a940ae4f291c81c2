package carriers

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"ferry/bundle"
	"ferry/node"
)

// incoming is a bundle this node wanted, as its bytes arrive.
type incoming struct {
	xfer    int
	item    offerItem
	asked   int64 // the offset asked for
	got     int64 // the offset of the next byte
	head    []byte
	partial *node.Partial
	resumed bool
}

// onOffer decides, for each bundle the peer offers, whether to take it
// (from the byte a cut transfer stopped at), to record it as known and
// not needed, or to leave it for later; then it asks for what it takes.
func (s *session) onOffer(ctx context.Context, m *message) error {
	round, items, err := parseOffer(m)
	if err != nil {
		return err
	}
	if round != s.peerRound+1 {
		return protocolError("offer of round %d, expected %d", round, s.peerRound+1)
	}
	s.peerRound = round
	s.peerOffer[round] = items
	budget := s.opts.MaxReceive
	var ws []want
	for i := range items {
		it := &items[i]
		s.learned[it.ref()] = true
		take, known := s.decide(it)
		if known != "" {
			s.know = append(s.know, node.Known{Source: it.Source, Seq: it.Seq, Dest: it.Dest, Expires: it.Expires, Reason: known})
			s.rep.Known++
		}
		if !take {
			continue
		}
		if s.opts.MaxReceive > 0 && it.Size > budget || !s.claim(it.ref()) {
			s.rep.Left++
			s.rep.LeftBytes += it.Size
			continue
		}
		budget -= it.Size
		w := want{index: i}
		in := &incoming{item: *it}
		if p, err := s.n.PartialOf(ctx, it.Source, it.Seq); err != nil {
			return err
		} else if p != nil && p.Size == it.Size && p.Have > 0 && p.Have < p.Size {
			w.offset, w.id = p.Have, [8]byte(p.ID[:8])
			in.asked, in.got, in.resumed = p.Have, p.Have, true
		}
		in.xfer = s.nextIn
		s.nextIn++
		s.in = append(s.in, in)
		s.totalIn += it.Size - in.asked
		ws = append(ws, w)
	}
	if len(items) > 0 {
		s.w.message(FrameWant, encodeWant(round, ws))
	}
	return nil
}

// decide says whether to take an offered bundle, and whether to record it
// as known without taking it.
func (s *session) decide(it *offerItem) (take bool, known node.KnownReason) {
	switch it.status {
	case offerDelivered:
		if s.pol.ForSelf(it.Dest) && it.Dest.Type != bundle.DestNode {
			return false, "" // for a group or everyone: another peer may still carry it here
		}
		// Addressed to this node alone and delivered, yet not here: the
		// node was restored from a backup older than the delivery.
		// Nothing can bring it back; knowing it keeps the two
		// inventories equal (else every session finds them different).
		return false, node.KnownDelivered
	case offerExpired:
		if !it.Expires.IsZero() && s.n.Now().Before(it.Expires) {
			return false, "" // not by this node's clock
		}
		return false, node.KnownExpired
	case offerWithheld:
		s.rep.Left++
		s.rep.LeftBytes += it.Size
		return false, ""
	}
	err := s.pol.Accepts(it.Source, it.Dest, it.Expires)
	switch {
	case errors.Is(err, node.ErrExpired):
		return false, node.KnownExpired
	case err != nil:
		return false, node.KnownDeclined // Know keeps wanting what is for this node
	case it.status == offerDeclined:
		return false, "" // wanted, but the peer does not have it
	case it.Size <= 0 || it.Size > bundle.DefaultMaxBundleSize:
		return false, ""
	}
	return true, ""
}

// onData takes bytes of the bundle being received.
func (s *session) onData(ctx context.Context, m *message) error {
	r := newReader(m)
	x := int(r.uvarint() & 0x7fffffff)
	off := int64(r.uvarint() & (1<<62 - 1))
	if r.err != nil {
		return r.err
	}
	data := r.b
	if len(s.in) == 0 || s.in[0].xfer != x {
		return protocolError("data of transfer %d out of order", x)
	}
	in := s.in[0]
	if off == 0 && in.got > 0 && in.asked > 0 {
		// The sender starts again from the first byte: it does not hold
		// the bundle this node began.
		if err := s.dropIncoming(ctx, in); err != nil {
			return err
		}
	}
	if off != in.got {
		return protocolError("data at byte %d of transfer %d, expected %d", off, x, in.got)
	}
	if int64(len(data)) > in.item.Size-in.got {
		return s.badBundle(ctx, in, fmt.Errorf("%d bytes past its offered size %d", int64(len(data))-(in.item.Size-in.got), in.item.Size))
	}
	s.rep.Received.Bytes += int64(len(data))
	s.dataRecv.Add(int64(len(data)))
	in.got += int64(len(data))
	if in.partial == nil && in.resumed {
		p, err := s.n.ResumePartial(ctx, s.partialID(ctx, in))
		if err != nil {
			return err
		}
		in.partial = p
	}
	if in.partial != nil {
		if _, err := in.partial.Write(data); err != nil {
			return s.badBundle(ctx, in, err)
		}
		if in.partial.Info().Have-s.lastSave[in.xfer] >= saveEvery {
			if err := in.partial.Save(ctx); err != nil {
				return err
			}
			s.lastSave[in.xfer] = in.partial.Info().Have
		}
	} else {
		in.head = append(in.head, data...)
		if err := s.beginIncoming(ctx, in); err != nil {
			return err
		}
	}
	if in.got == in.item.Size {
		s.in = s.in[1:]
		s.ingest.push(ingestJob{in: in})
		s.ingesting++
	}
	return nil
}

// saveEvery is how many bytes of a partial transfer may be lost to a
// crash (not to a cut: a cut saves everything received).
const saveEvery = 4 << 20

func (s *session) partialID(ctx context.Context, in *incoming) bundle.ID {
	p, err := s.n.PartialOf(ctx, in.item.Source, in.item.Seq)
	if err != nil || p == nil {
		return bundle.ID{}
	}
	return p.ID
}

// beginIncoming checks the first bytes of a bundle against its offer as
// soon as its signed header is complete, and then writes it to a partial
// file, unless the whole bundle came in at once.
func (s *session) beginIncoming(ctx context.Context, in *incoming) error {
	need, ok := prefixLen(in.head)
	if !ok {
		if len(in.head) > bundle.DefaultMaxHeaderSize+64 {
			return s.badBundle(ctx, in, errors.New("no bundle header"))
		}
		return nil
	}
	if need > bundle.DefaultMaxHeaderSize+64 || len(in.head) < need {
		if need > bundle.DefaultMaxHeaderSize+64 {
			return s.badBundle(ctx, in, fmt.Errorf("header of %d bytes", need))
		}
		return nil
	}
	rd, err := bundle.NewReader(bytes.NewReader(in.head[:need]), bundle.Limits{})
	if err != nil {
		return s.badBundle(ctx, in, err)
	}
	h := rd.Header()
	if h.Source != in.item.Source || h.Seq != in.item.Seq {
		return s.badBundle(ctx, in, fmt.Errorf("offered as %s:%d, its header says %s:%d", in.item.Source.Short(), in.item.Seq, h.Source.Short(), h.Seq))
	}
	if got := rd.PayloadOffset() + int64(h.PayloadSize); got != in.item.Size {
		return s.badBundle(ctx, in, fmt.Errorf("offered as %d bytes, its header says %d", in.item.Size, got))
	}
	if in.got == in.item.Size {
		return nil // whole: taken in from memory
	}
	p, err := s.n.BeginPartial(ctx, in.head[:need], in.item.Size)
	if err != nil {
		return s.badBundle(ctx, in, err)
	}
	if _, err := p.Write(in.head[need:]); err != nil {
		p.Discard(ctx)
		return s.badBundle(ctx, in, err)
	}
	in.partial, in.head = p, nil
	return nil
}

// prefixLen returns the length of a bundle's magic, header and signature
// from its first bytes, if they tell it yet.
func prefixLen(b []byte) (int, bool) {
	if len(b) < len(bundle.Magic)+1 {
		return 0, false
	}
	hlen, k := binary.Uvarint(b[len(bundle.Magic):])
	if k == 0 {
		return 0, false
	}
	if k < 0 || hlen > 1<<20 {
		return 1 << 30, true
	}
	return len(bundle.Magic) + k + int(hlen) + bundle.SignatureSize, true
}

// dropIncoming forgets what was received of a transfer.
func (s *session) dropIncoming(ctx context.Context, in *incoming) error {
	if in.partial != nil {
		if err := in.partial.Discard(ctx); err != nil {
			return err
		}
		in.partial = nil
	} else if in.resumed {
		if p, err := s.n.PartialOf(ctx, in.item.Source, in.item.Seq); err == nil && p != nil {
			if rp, err := s.n.ResumePartial(ctx, p.ID); err == nil {
				rp.Discard(ctx)
			}
		}
	}
	in.head, in.got, in.asked, in.resumed = nil, 0, 0, false
	return nil
}

// badBundle refuses a transfer whose bytes are not the bundle offered:
// nothing of it is kept, and the session ends.
func (s *session) badBundle(ctx context.Context, in *incoming, reason error) error {
	s.dropIncoming(ctx, in)
	return fmt.Errorf("%w: bundle %s:%d: %v", ErrBadBundle, in.item.Source.Short(), in.item.Seq, reason)
}

// onSkip drops a transfer the peer can no longer send.
func (s *session) onSkip(ctx context.Context, m *message) error {
	r := newReader(m)
	x := int(r.uvarint() & 0x7fffffff)
	if err := r.end(); err != nil {
		return err
	}
	if len(s.in) == 0 || s.in[0].xfer != x {
		return protocolError("skip of transfer %d out of order", x)
	}
	in := s.in[0]
	s.in = s.in[1:]
	return s.saveIncoming(ctx, in)
}

// saveIncoming keeps what was received of a transfer for the next contact.
func (s *session) saveIncoming(ctx context.Context, in *incoming) error {
	if in.partial == nil {
		return nil
	}
	err := in.partial.Close(ctx)
	in.partial = nil
	return err
}

// ingestJob is a bundle received whole, to take in.
type ingestJob struct{ in *incoming }

// ingestQueue hands received bundles to the ingest goroutine, so that
// taking in a big bundle does not hold up the link.
type ingestQueue struct {
	mu     sync.Mutex
	jobs   []ingestJob
	closed bool
	wake   chan struct{}
}

func newIngestQueue() *ingestQueue { return &ingestQueue{wake: make(chan struct{}, 1)} }

func (q *ingestQueue) push(j ingestJob) {
	q.mu.Lock()
	q.jobs = append(q.jobs, j)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *ingestQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *ingestQueue) pop() (ingestJob, bool) {
	for {
		q.mu.Lock()
		if len(q.jobs) > 0 {
			j := q.jobs[0]
			q.jobs = q.jobs[1:]
			q.mu.Unlock()
			return j, true
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return ingestJob{}, false
		}
		<-q.wake
	}
}

// ingested is the outcome of taking in one bundle.
type ingested struct {
	in  *incoming
	res node.IngestResult
	err error
}

// runIngest takes in received bundles until the queue closes.
func (s *session) runIngest(ctx context.Context) {
	for {
		j, ok := s.ingest.pop()
		if !ok {
			return
		}
		var res node.IngestResult
		var err error
		if j.in.partial != nil {
			res, err = j.in.partial.Ingest(ctx)
		} else {
			res, err = s.n.Ingest(ctx, bytes.NewReader(j.in.head))
		}
		s.event(event{ingested: &ingested{in: j.in, res: res, err: err}})
	}
}

// onIngested reports a bundle taken in to its sender, or ends the session
// if the bundle was not the one offered.
func (s *session) onIngested(d *ingested) error {
	s.ingesting--
	in := d.in
	var refused *node.RefusedError
	status := byte(gotApplied)
	switch {
	case errors.As(d.err, &refused) && errors.Is(d.err, node.ErrExpired):
		status = gotExpired
		s.know = append(s.know, node.Known{Source: in.item.Source, Seq: in.item.Seq, Dest: in.item.Dest, Expires: in.item.Expires, Reason: node.KnownExpired})
	case errors.As(d.err, &refused):
		return fmt.Errorf("%w: bundle %s:%d: %v", ErrBadBundle, in.item.Source.Short(), in.item.Seq, refused.Reason)
	case d.err != nil:
		return d.err
	default:
		if d.res.Header.Source != in.item.Source || d.res.Header.Seq != in.item.Seq {
			return fmt.Errorf("%w: bundle %s:%d arrived as %s:%d", ErrBadBundle, in.item.Source.Short(), in.item.Seq, d.res.Header.Source.Short(), d.res.Header.Seq)
		}
		s.rep.Received.Bundles++
		if in.resumed {
			s.rep.Received.Resumed++
			s.rep.Received.ResumedBytes += in.asked
		}
		switch d.res.Status {
		case node.StatusApplied:
			s.rep.Applied++
		case node.StatusStored:
			status = gotStored
			s.rep.Stored++
		case node.StatusDuplicate:
			status = gotDuplicate
			s.rep.Duplicates++
		}
		s.rep.Messages += d.res.Messages
		s.rep.Receipts += d.res.Receipts
	}
	b := binary.AppendUvarint(nil, uint64(in.xfer))
	s.w.message(FrameGot, append(b, status))
	return nil
}
