package carriers

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"ferry/bundle"
	"ferry/node"
)

// Options tune a session. The zero value is ready to use.
type Options struct {
	// Logger receives the session's log; nil discards it.
	Logger *slog.Logger
	// Idle is how long the peer may send nothing (not even a ping) before
	// the session ends as stalled; zero means DefaultIdle.
	Idle time.Duration
	// MaxReceive bounds the bytes of bundles taken in in one session
	// (the quota this node grants the peer); zero means no bound. What
	// does not fit waits for the next contact.
	MaxReceive int64
	// MaxSend bounds the bytes of bundles sent in one session; zero
	// means no bound.
	MaxSend int64
	// Peer, if not the zero ID, is the only peer the session accepts
	// (the one that was dialed).
	Peer bundle.NodeID
	// Stats, if set, records the session per peer.
	Stats *Stats
	// Progress, if set, is called as bundle bytes move.
	Progress func(Progress)
}

// DefaultIdle is how long a peer may stay silent.
const DefaultIdle = 60 * time.Second

// maxRounds bounds the offer rounds of one session: the bundles, the
// receipts they call for, and a last look.
const maxRounds = 4

// Progress reports bundle bytes moving.
type Progress struct {
	Sent, SendTotal        int64
	Received, ReceiveTotal int64
}

// Report says what a session did.
type Report struct {
	Peer     bundle.NodeID `json:"peer"`
	PeerName string        `json:"peer_name"`
	Medium   string        `json:"medium"`
	Remote   string        `json:"remote"`
	Started  time.Time     `json:"started"`
	Finished time.Time     `json:"finished"`

	// InSync reports that both inventories were equal at the hello: the
	// session moved nothing.
	InSync    bool      `json:"in_sync"`
	Reconcile Reconcile `json:"reconcile"`
	Rounds    int       `json:"rounds"`

	Sent     Transfers `json:"sent"`
	Received Transfers `json:"received"`

	Applied    int `json:"applied"`    // bundles for this node, applied
	Stored     int `json:"stored"`     // bundles taken on for carrying
	Duplicates int `json:"duplicates"` // bundles that arrived twice
	Messages   int `json:"messages"`   // new messages applied
	Receipts   int `json:"receipts"`   // receipts applied
	// Known counts bundles the peer told of that this node does not need
	// (delivered, expired, or not for it to carry).
	Known int `json:"known"`
	// Settled counts bundles whose bodies this node dropped because their
	// destination, the peer, now holds them.
	Settled int `json:"settled"`
	// Left counts bundles either side held back for quota: they wait for
	// the next contact.
	Left      int   `json:"left"`
	LeftBytes int64 `json:"left_bytes"`

	// WireSent and WireReceived count every frame byte.
	WireSent     int64 `json:"wire_sent"`
	WireReceived int64 `json:"wire_received"`
}

// Reconcile describes how the two inventories were compared.
type Reconcile struct {
	// Mode is "in sync", "explicit" or "sketch": how the peer's holes
	// reached this node.
	Mode       string `json:"mode"`
	Sent       int64  `json:"bytes_sent"`     // vector, symbols and requests
	Received   int64  `json:"bytes_received"` // the same, from the peer
	RoundTrips int    `json:"round_trips"`    // after the hello
	Symbols    int    `json:"symbols"`        // coded symbols decoded
}

// Transfers counts bundles moved one way.
type Transfers struct {
	Bundles      int   `json:"bundles"`
	Bytes        int64 `json:"bytes"`         // bundle bytes that crossed the link
	Resumed      int   `json:"resumed"`       // transfers continued from a cut
	ResumedBytes int64 `json:"resumed_bytes"` // bytes they did not send again
}

// Sync runs one session with the node at the other end of l: hello and
// mutual authentication, reconciliation of the two inventories, then
// rounds of offers and transfers, most urgent first, until neither side
// has anything the other lacks. The peer runs Sync on its end at the same
// time; the protocol is symmetric. Sync closes l.
//
// It returns a report of what moved, also with an error. The error says
// why the session ended early: a [*RefusedError] when the peer refused,
// or one wrapping [ErrUntrusted], [ErrAuth], [ErrProtocol], [ErrStalled]
// or [ErrBadBundle] when this node did (and told the peer why). Bundles
// received whole before the end are kept; one cut off mid-way continues
// from the byte it stopped at at the next contact.
func Sync(ctx context.Context, n *node.Node, l Link, opts Options) (*Report, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Idle <= 0 {
		opts.Idle = DefaultIdle
	}
	info := l.Info()
	s := &session{
		n: n, link: l, info: info, opts: opts, log: opts.Logger,
		rep:       &Report{Medium: info.Medium, Remote: info.Remote, Started: n.Now()},
		events:    make(chan event, 64),
		done:      make(chan struct{}),
		myOffer:   map[int][]offerItem{},
		peerOffer: map[int][]offerItem{},
		wanted:    map[int]bool{},
		sentEnd:   map[int]bool{},
		gotEnd:    map[int]bool{},
		offered:   map[seqRef]bool{},
		learned:   map[seqRef]bool{},
		out:       map[int]*outgoing{},
		lastSave:  map[int]int64{},
		ingest:    newIngestQueue(),
		ended:     make(chan struct{}),
	}
	s.lastRecv.Store(time.Now().UnixNano())
	err := s.run(ctx)
	s.rep.Finished = n.Now()
	s.rep.WireSent, s.rep.WireReceived = s.wireSent.Load(), s.wireRecv.Load()
	s.rep.Sent.Bytes = s.dataSent.Load()
	if opts.Stats != nil && s.rep.Peer != (bundle.NodeID{}) {
		opts.Stats.record(s.rep, err)
	}
	if err == nil && s.rep.Peer != (bundle.NodeID{}) {
		// A contact, for the node's announcements (docs/network.md).
		if cerr := n.RecordContact(context.WithoutCancel(ctx), s.rep.Peer, info.Medium, s.rep.Finished,
			s.rep.Sent.Bytes+s.rep.Received.Bytes); cerr != nil {
			s.log.Warn("recording the contact", "peer", s.rep.PeerName, "err", cerr)
		}
	}
	if err != nil {
		s.log.Info("session ended", "peer", s.rep.PeerName, "err", err)
	}
	return s.rep, err
}

// session is one run of the protocol. Its state belongs to the goroutine
// running Sync; the reader, the writer and the ingester talk to it through
// events.
type session struct {
	n    *node.Node
	link Link
	info LinkInfo
	opts Options
	log  *slog.Logger
	rep  *Report
	pol  *node.Policy
	// reach is the peer's delivery predictability, from its ROUTES.
	reach map[bundle.NodeID]float64

	me, hi hello // this node's hello, the peer's
	vec    node.Vector
	k      *keying
	rc     *reconciler
	peer   *peerSet // once reconciliation is done

	round, peerRound  int
	myOffer           map[int][]offerItem
	peerOffer         map[int][]offerItem
	wanted            map[int]bool
	sentEnd, gotEnd   map[int]bool
	offered           map[seqRef]bool
	learned           map[seqRef]bool // bundles the peer has, learned after its vector
	in                []*incoming
	nextIn, nextOut   int
	ingesting         int
	out               map[int]*outgoing
	lastSave          map[int]int64
	carried, settle   []bundle.ID
	know              []node.Known
	totalIn, totalOut int64
	byeSent, byeGot   bool
	claimed           []seqRef
	sendErr           error

	w      *writer
	ingest *ingestQueue
	events chan event
	done   chan struct{}
	wg     sync.WaitGroup

	stalled            atomic.Bool
	lastRecv           atomic.Int64 // unix ns
	ended              chan struct{}
	wireSent, wireRecv atomic.Int64
	dataSent, dataRecv atomic.Int64
}

// event is news for the session's goroutine.
type event struct {
	msg      *message
	err      error
	sending  bool // err is the writer's
	endSent  int
	ingested *ingested
}

func (s *session) event(e event) {
	select {
	case s.events <- e:
	case <-s.done:
	}
}

// send writes one frame, ending the session as stalled if the peer does
// not take it within the idle deadline.
func (s *session) send(f []byte) error {
	err := s.guard(func() error { return s.link.Send(f) })
	if err == nil {
		s.wireSent.Add(int64(len(f)))
	}
	return err
}

// recv reads one frame, ending the session as stalled if none comes
// within the idle deadline.
func (s *session) recv() ([]byte, error) {
	var f []byte
	err := s.guard(func() error {
		var err error
		f, err = s.link.Recv()
		return err
	})
	if err == nil {
		s.wireRecv.Add(int64(len(f)))
		s.lastRecv.Store(time.Now().UnixNano())
	}
	return f, err
}

func (s *session) guard(fn func() error) error {
	t := time.AfterFunc(s.opts.Idle, func() {
		s.stalled.Store(true)
		s.link.Close()
	})
	err := fn()
	t.Stop()
	if err != nil && s.stalled.Load() {
		return fmt.Errorf("%w: nothing from the peer for %s", ErrStalled, s.opts.Idle)
	}
	return err
}

// recvMessage reads frames until a whole message arrives: in the hello
// phase, before the peer is known, small ones only.
func (s *session) recvMessage() (*message, error) {
	a := assembler{limit: maxHelloMessage}
	for {
		f, err := s.recv()
		if err != nil {
			return nil, s.linkError(err)
		}
		m, err := a.add(f)
		if err != nil || m != nil {
			return m, err
		}
	}
}

func (s *session) linkError(err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("carriers: the peer closed the link: %w", io.ErrUnexpectedEOF)
	}
	return err
}

func (s *session) run(ctx context.Context) error {
	defer close(s.ended)
	defer s.link.Close()
	// Cancelling ctx ends the session wherever it waits.
	defer context.AfterFunc(ctx, func() { s.link.Close() })()
	if err := s.prepare(ctx); err != nil {
		return err
	}
	if err := s.hello(ctx); err != nil {
		return err
	}
	defer s.unregister()
	if s.rep.InSync {
		return s.inSync(ctx)
	}
	return s.loop(ctx)
}

// prepare seals what waits for a contact, expires what is due and
// computes this node's vector.
func (s *session) prepare(ctx context.Context) error {
	if _, err := s.n.Held(ctx); err != nil {
		return err
	}
	if err := s.n.PrunePartials(ctx, partialMaxAge); err != nil {
		s.log.Warn("pruning partial transfers", "err", err)
	}
	pol, err := s.n.Policy(ctx)
	if err != nil {
		return err
	}
	s.pol = pol
	vec, err := s.n.Vector(ctx)
	if err != nil {
		return err
	}
	s.me, err = newHello(s.n.ID())
	if err != nil {
		return err
	}
	s.vec = vec
	return s.ingestComplete(ctx)
}

// ingestComplete takes in bundles received whole whose ingest a session
// that ended did not get to.
func (s *session) ingestComplete(ctx context.Context) error {
	ps, err := s.n.Partials(ctx)
	if err != nil {
		return err
	}
	for _, p := range ps {
		if p.Have != p.Size {
			continue
		}
		rp, err := s.n.ResumePartial(ctx, p.ID)
		if err != nil {
			s.log.Warn("resuming a partial transfer", "bundle", p.ID, "err", err)
			continue
		}
		if _, err := rp.Ingest(ctx); err != nil {
			s.log.Warn("taking in a bundle received earlier", "bundle", p.ID, "err", err)
		}
	}
	if len(ps) > 0 {
		vec, err := s.n.Vector(ctx)
		if err != nil {
			return err
		}
		s.vec = vec
	}
	return nil
}

// maxHelloMessage bounds what a peer not yet authenticated may send.
const maxHelloMessage = 1024

// partialMaxAge is how long a cut transfer waits to be resumed.
const partialMaxAge = 30 * 24 * time.Hour

// hello runs the hello and the mutual authentication, and compares the
// inventories' digests.
func (s *session) hello(ctx context.Context) error {
	if err := s.send(frames(FrameHello, s.me.marshal(), s.info.MTU)[0]); err != nil {
		return s.linkError(err)
	}
	m, err := s.expect(FrameHello)
	if err != nil {
		return err
	}
	if s.hi, err = parseHello(m); err != nil {
		return s.refuse(err)
	}
	s.rep.Peer, s.rep.PeerName = s.hi.id, s.hi.id.Short()
	if err := s.checkPeer(ctx); err != nil {
		return s.refuse(err)
	}
	s.k = newKeying(s.me.nonce, s.hi.nonce)
	s.rc = newReconciler(newLocal(s.k, s.vec), s.learned)
	digest := s.vec.Digest()
	a := auth{digest: digest}
	copy(a.sig[:], ed25519.Sign(s.n.Identity().Sign, transcript(s.me, s.hi, s.info.Binding, digest)))
	if err := s.send(frames(FrameAuth, a.marshal(), s.info.MTU)[0]); err != nil {
		return s.linkError(err)
	}
	if m, err = s.expect(FrameAuth); err != nil {
		return err
	}
	pa, err := parseAuth(m)
	if err != nil {
		return s.refuse(err)
	}
	if !ed25519.Verify(s.hi.id.PublicKey(), transcript(s.hi, s.me, s.info.Binding, pa.digest), pa.sig[:]) {
		return s.refuse(fmt.Errorf("%w: the hello of %s is not signed by its key", ErrAuth, s.rep.PeerName))
	}
	s.register()
	s.rep.InSync = pa.digest == digest
	s.rep.Reconcile.Sent += 16
	s.rep.Reconcile.Received += 16
	return nil
}

// expect reads the next message, which must be of type t or a refusal.
func (s *session) expect(t FrameType) (*message, error) {
	m, err := s.recvMessage()
	if err != nil {
		if errors.Is(err, ErrProtocol) {
			return nil, s.refuse(err)
		}
		return nil, err
	}
	if m.t == FrameRefuse {
		return nil, s.refused(m)
	}
	if m.t != t {
		return nil, s.refuse(protocolError("%s where a %s belongs", m.t, t))
	}
	return m, nil
}

// checkPeer refuses a peer this node does not trust.
func (s *session) checkPeer(ctx context.Context) error {
	id := s.hi.id
	switch {
	case id == s.me.id:
		return fmt.Errorf("%w: the link leads back to this node itself", ErrUntrusted)
	case s.info.Peer != (bundle.NodeID{}) && s.info.Peer != id:
		return fmt.Errorf("%w: the link authenticated %s but the hello names %s", ErrAuth, s.info.Peer.Short(), id.Short())
	case s.opts.Peer != (bundle.NodeID{}) && s.opts.Peer != id:
		return fmt.Errorf("%w: expected node %s, found %s", ErrUntrusted, s.opts.Peer.Short(), id.Short())
	}
	p, err := s.n.Peer(ctx, id.String())
	if errors.Is(err, node.ErrUnknownPeer) {
		return fmt.Errorf("%w: node %s is not a trusted peer of %s (add its card with 'ferry peer add')", ErrUntrusted, id.Short(), s.n.Name())
	}
	if err != nil {
		return err
	}
	s.rep.PeerName = p.Name
	return nil
}

// refuse tells the peer why the session ends, then returns err.
func (s *session) refuse(err error) error {
	reason := err.Error()
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	body := appendString(nil, reason)
	if s.w != nil {
		s.w.message(FrameRefuse, body)
		return err
	}
	if s.send(frames(FrameRefuse, body, s.info.MTU)[0]) == nil {
		s.linger()
	}
	return err
}

// linger reads until the peer closes the link, briefly, so that a
// refusal reaches it before this end closes.
func (s *session) linger() {
	t := time.AfterFunc(2*time.Second, func() { s.link.Close() })
	defer t.Stop()
	for {
		if _, err := s.link.Recv(); err != nil {
			return
		}
	}
}

// refused turns the peer's refusal into an error.
func (s *session) refused(m *message) error {
	r := newReader(m)
	reason := r.string(maxReason)
	if r.err != nil {
		reason = "(unreadable reason)"
	}
	name := s.rep.PeerName
	if name == "" {
		name = "the peer"
	}
	return &RefusedError{Peer: name, Reason: reason}
}

// inSync ends a session between equal inventories: the peer holds every
// bundle this node carries for it.
func (s *session) inSync(ctx context.Context) error {
	s.rep.Reconcile.Mode = "in sync"
	if err := s.settleForPeer(ctx); err != nil {
		return err
	}
	if err := s.n.Encounter(ctx, s.hi.id, nil); err != nil {
		return err
	}
	if err := s.send([]byte{byte(FrameBye)}); err != nil {
		return s.linkError(err)
	}
	m, err := s.recvMessage()
	switch {
	case err != nil:
		return err
	case m.t == FrameRefuse:
		return s.refused(m)
	case m.t != FrameBye:
		return s.refuse(protocolError("%s after equal inventories", m.t))
	}
	return nil
}

// settleForPeer drops the bodies of bundles held for the peer that the
// peer, their destination, now has.
func (s *session) settleForPeer(ctx context.Context) error {
	held, err := s.n.Held(ctx)
	if err != nil {
		return err
	}
	var ids []bundle.ID
	for _, b := range held {
		if b.Dest.Type != bundle.DestNode || bundle.NodeID(b.Dest.ID) != s.hi.id {
			continue
		}
		if s.peerHolds(b.Source, b.Seq) {
			ids = append(ids, b.ID)
		}
	}
	s.settle = append(s.settle, ids...)
	return s.flushCustody(ctx)
}

// peerHolds reports whether the peer is known to hold a bundle: the peer
// took it or offered it in this session, or the two inventories compared
// at the hello (equal digests, or reconciliation) say so. Those say
// nothing of a bundle that reached this node after it computed its
// vector, by another carrier at the same time (a stick plugged in during
// a LAN session): equal digests then only mean the peer has what this
// node had, so such a bundle waits for the next contact.
func (s *session) peerHolds(source bundle.NodeID, seq uint64) bool {
	if s.learned[seqRef{source, seq}] {
		return true
	}
	if o := s.vec.Origin(source); o == nil || !o.Has(seq) {
		return false // not in the inventory compared
	}
	return s.rep.InSync || s.peer.has(source, seq)
}

// loop runs reconciliation and the rounds of transfers.
func (s *session) loop(ctx context.Context) (err error) {
	loopCtx, cancel := context.WithCancel(ctx)
	s.w = newWriter(s)
	s.wg.Add(3)
	go func() { defer s.wg.Done(); s.w.run(loopCtx) }()
	go func() { defer s.wg.Done(); s.read() }()
	go func() { defer s.wg.Done(); s.runIngest(ctx) }()
	defer func() {
		var refused *RefusedError
		if err != nil && !errors.As(err, &refused) && !s.stalled.Load() {
			s.refuse(err)
		}
		s.w.stop()
		s.ingest.close()
		s.w.wait(2 * time.Second)
		s.link.Close()
		cancel()
		close(s.done)
		s.wg.Wait()
		bg := context.WithoutCancel(ctx)
		s.saveAll(bg)
		s.releaseClaims()
		if ferr := s.flushCustody(bg); err == nil {
			err = ferr
		}
	}()
	s.rep.Reconcile.RoundTrips = 1
	if err := s.sendRoutes(ctx); err != nil {
		return err
	}
	body := s.rc.start()
	s.rep.Reconcile.Sent += int64(len(body))
	s.w.message(FrameVector, body)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		var e event
		select {
		case e = <-s.events:
		case <-tick.C:
			s.progress()
			continue
		case <-loopCtx.Done():
			return loopCtx.Err()
		}
		if err := s.handle(loopCtx, e); err != nil {
			if errors.Is(err, errFinished) {
				return nil
			}
			return err
		}
	}
}

// saveAll keeps what was received of transfers cut off.
func (s *session) saveAll(ctx context.Context) {
	for _, in := range s.in {
		if err := s.saveIncoming(ctx, in); err != nil {
			s.log.Warn("saving a partial transfer", "err", err)
		}
	}
	// Bundles received whole but not yet taken in: their partial files
	// stay complete, and are taken in when they are next offered.
	for {
		j, ok := s.ingest.pop()
		if !ok {
			break
		}
		s.saveIncoming(ctx, j.in)
	}
}

var errFinished = errors.New("finished")

// read turns frames into messages for the session's goroutine.
func (s *session) read() {
	var a assembler
	for {
		f, err := s.recv()
		if err != nil {
			s.event(event{err: s.linkError(err)})
			return
		}
		m, err := a.add(f)
		if err != nil {
			s.event(event{err: err})
			return
		}
		if m == nil || m.t == FramePing {
			continue
		}
		m.body = append([]byte(nil), m.body...)
		s.event(event{msg: m})
		if m.t == FrameBye || m.t == FrameRefuse {
			return
		}
	}
}

// handle processes one event.
func (s *session) handle(ctx context.Context, e event) error {
	switch {
	case e.err != nil && e.sending && s.sendErr == nil:
		// The peer may have refused and closed: give the reader a moment
		// to bring its reason.
		s.sendErr = e.err
		time.AfterFunc(time.Second, func() { s.event(event{err: e.err}) })
		return nil
	case e.err != nil:
		if s.byeSent && s.byeGot {
			return errFinished
		}
		return e.err
	case e.endSent > 0:
		s.sentEnd[e.endSent] = true
	case e.ingested != nil:
		if err := s.onIngested(e.ingested); err != nil {
			return err
		}
	case e.msg != nil:
		if err := s.onMessage(ctx, e.msg); err != nil {
			return err
		}
	}
	return s.advance(ctx)
}

func (s *session) onMessage(ctx context.Context, m *message) error {
	switch m.t {
	case FrameVector, FrameSymbols, FrameMore:
		return s.onReconcile(m)
	case FrameOffer:
		if s.rc.pv == nil {
			return protocolError("offer before the vector")
		}
		return s.onOffer(ctx, m)
	case FrameWant:
		return s.onWant(m)
	case FrameData:
		return s.onData(ctx, m)
	case FrameSkip:
		return s.onSkip(ctx, m)
	case FrameGot:
		return s.onGot(m)
	case FrameEnd:
		r := newReader(m)
		round := int(r.uvarint() & 0xffff)
		if err := r.end(); err != nil {
			return err
		}
		if round != s.peerRound || s.gotEnd[round] {
			return protocolError("end of round %d out of place", round)
		}
		if len(s.in) > 0 {
			return protocolError("end of round %d with %d wanted bundles not sent", round, len(s.in))
		}
		s.gotEnd[round] = true
	case FrameBye:
		s.byeGot = true
	case FrameRoutes:
		return s.onRoutes(ctx, m)
	case FrameRefuse:
		return s.refused(m)
	default:
		return protocolError("%s after the hello", m.t)
	}
	return nil
}

// advance moves the session on: the first offer once the peer's
// inventory is known, the next round once one is done, goodbye at the end.
func (s *session) advance(ctx context.Context) error {
	if s.peer == nil {
		return nil
	}
	if s.round == 0 {
		if err := s.settleForPeer(ctx); err != nil {
			return err
		}
		s.round = 1
		return s.sendOffer(ctx, 1, s.vec)
	}
	if s.byeSent {
		if s.byeGot {
			return errFinished
		}
		return nil
	}
	r := s.round
	if !(s.sentEnd[r] && s.gotEnd[r] && s.ingesting == 0 && len(s.in) == 0) {
		return nil
	}
	s.rep.Rounds = r
	if err := s.flushCustody(ctx); err != nil {
		return err
	}
	if len(s.myOffer[r]) == 0 && len(s.peerOffer[r]) == 0 || r == maxRounds {
		s.byeSent = true
		s.w.message(FrameBye, nil)
		if s.byeGot {
			return errFinished
		}
		return nil
	}
	// What this round brought may call for more: receipts for the
	// messages just applied, sealed now.
	sealed, err := s.n.Seal(ctx)
	if err != nil {
		return err
	}
	var vec node.Vector
	if len(sealed) > 0 {
		if vec, err = s.n.Vector(ctx); err != nil {
			return err
		}
	}
	s.round = r + 1
	return s.sendOffer(ctx, r+1, vec)
}

// onReconcile hands a reconciliation message to the reconciler and sends
// what it answers.
func (s *session) onReconcile(m *message) error {
	s.rep.Reconcile.Received += int64(len(m.body))
	out, err := s.rc.handle(m)
	if err != nil {
		return err
	}
	for _, o := range out {
		s.rep.Reconcile.Sent += int64(len(o.body))
		s.w.message(o.t, o.body)
	}
	if s.rc.peer != nil && s.peer == nil {
		s.peer = s.rc.peer
		s.rep.Reconcile.Mode = s.rc.mode
		s.rep.Reconcile.Symbols = s.rc.symbols
		s.rep.Reconcile.RoundTrips = 1 + s.rc.asked
	}
	return nil
}

// progress reports bytes moving.
func (s *session) progress() {
	if s.opts.Progress == nil {
		return
	}
	s.opts.Progress(Progress{Sent: s.dataSent.Load(), SendTotal: s.totalOut, Received: s.dataRecv.Load(), ReceiveTotal: s.totalIn})
}
