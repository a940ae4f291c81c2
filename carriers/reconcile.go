package carriers

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"slices"

	"ferry/bundle"
	"ferry/node"
)

// Reconciliation (docs/sync.md): each side sends its version vector, one
// entry per origin (a 6-byte salted short ID, the highest number, and the
// holes below it), so that the other side knows exactly what it lacks.
// Holes are sent as explicit ranges while they are few; when a node has
// many small holes, most of them shared with its peer, it sends them as a
// rateless IBLT sketch instead, whose size depends only on how many holes
// differ.

// Vector modes. Wire constants.
const (
	vectorExplicit = 0x01 // every hole as a range
	vectorSketch   = 0x02 // long holes as ranges, short ones in coded symbols
)

// Reconciliation parameters: the cost model of docs/sync.md.
const (
	shortLen         = 6        // bytes of a short origin ID
	sketchMinRun     = 4        // holes at least this long always travel as ranges
	explicitMaxBytes = 16 << 10 // holes up to this size travel explicitly
	firstSymbols     = 128      // coded symbols sent with a sketch vector
	symbolBytes      = 13       // a coded symbol on the wire, about
	maxMoreSymbols   = 1 << 18  // the most symbols a peer may ask for at once
)

// shortID is an origin's salted short ID.
type shortID [shortLen]byte

// seqRef names one bundle by origin and number.
type seqRef struct {
	origin bundle.NodeID
	seq    uint64
}

// keying derives a session's salted short IDs and sketch keys. Both ends
// compute the same salt from both hellos' nonces.
type keying struct {
	salt      [32]byte
	checkSalt uint64
	origins   map[bundle.NodeID]originKey
}

type originKey struct {
	short shortID
	key   uint64
}

func newKeying(a, b [16]byte) *keying {
	lo, hi := a, b
	if slices.Compare(lo[:], hi[:]) > 0 {
		lo, hi = hi, lo
	}
	h := sha256.New()
	h.Write([]byte("ferry-session-salt-1"))
	h.Write(lo[:])
	h.Write(hi[:])
	k := &keying{origins: map[bundle.NodeID]originKey{}}
	copy(k.salt[:], h.Sum(nil))
	k.checkSalt = binary.BigEndian.Uint64(k.salt[24:])
	return k
}

func (k *keying) origin(id bundle.NodeID) originKey {
	if ok, found := k.origins[id]; found {
		return ok
	}
	h := sha256.New()
	h.Write([]byte("ferry-origin-1"))
	h.Write(k.salt[:])
	h.Write(id[:])
	sum := h.Sum(nil)
	var ok originKey
	copy(ok.short[:], sum)
	ok.key = binary.BigEndian.Uint64(sum[8:])
	k.origins[id] = ok
	return ok
}

func (k *keying) itemKey(ok originKey, seq uint64) uint64 {
	return splitmix64(ok.key ^ splitmix64(seq))
}

func (k *keying) check(key uint64) uint32 { return uint32(splitmix64(key^k.checkSalt) >> 32) }

// splitHoles divides holes into the runs that travel as ranges in a
// sketch vector and the numbers that go into the sketch.
func splitHoles(holes []node.Range) (runs []node.Range, small []uint64) {
	for _, h := range holes {
		if h.Len() >= sketchMinRun {
			runs = append(runs, h)
			continue
		}
		for s := h.Lo; s <= h.Hi; s++ {
			small = append(small, s)
		}
	}
	return runs, small
}

// local is this node's side of a reconciliation.
type local struct {
	k     *keying
	vec   node.Vector
	small []uint64 // sketch keys of this node's short holes
	owner map[uint64]seqRef
	enc   *symbolEncoder // this node's sketch, once sent
}

func newLocal(k *keying, vec node.Vector) *local {
	l := &local{k: k, vec: vec}
	for _, o := range vec {
		ok := k.origin(o.Origin)
		_, small := splitHoles(o.Holes)
		for _, s := range small {
			l.small = append(l.small, k.itemKey(ok, s))
		}
	}
	return l
}

// vectorMessage encodes this node's vector: explicitly when its holes are
// few, else as a sketch with the first coded symbols.
func (l *local) vectorMessage() []byte {
	explicit := l.encodeVector(vectorExplicit)
	if len(l.small) == 0 || len(explicit) <= explicitMaxBytes+len(l.vec)*(shortLen+4) {
		return explicit
	}
	b := l.encodeVector(vectorSketch)
	b = binary.AppendUvarint(b, uint64(len(l.small)))
	l.enc = newSymbolEncoder(l.small, l.k.check)
	return appendSymbols(b, 0, l.enc.produce(firstSymbols))
}

// explicitMessage encodes this node's vector with every hole explicit.
func (l *local) explicitMessage() []byte { return l.encodeVector(vectorExplicit) }

func (l *local) encodeVector(mode byte) []byte {
	b := []byte{mode}
	b = binary.AppendUvarint(b, uint64(len(l.vec)))
	for _, o := range l.vec {
		ok := l.k.origin(o.Origin)
		b = append(b, ok.short[:]...)
		b = binary.AppendUvarint(b, o.Max)
		runs := o.Holes
		if mode == vectorSketch {
			runs, _ = splitHoles(o.Holes)
		}
		b = binary.AppendUvarint(b, uint64(len(runs)))
		var prev uint64
		for _, r := range runs {
			b = binary.AppendUvarint(b, r.Lo-prev)
			b = binary.AppendUvarint(b, r.Hi-r.Lo)
			prev = r.Hi
		}
	}
	return b
}

// moreSymbols answers a request for n more coded symbols.
func (l *local) moreSymbols(n int) []byte {
	start := l.enc.next
	return appendSymbols(nil, start, l.enc.produce(n))
}

func appendSymbols(b []byte, start uint64, syms []symbol) []byte {
	b = binary.AppendUvarint(b, start)
	b = binary.AppendUvarint(b, uint64(len(syms)))
	for _, s := range syms {
		b = binary.BigEndian.AppendUint64(b, s.sum)
		b = binary.BigEndian.AppendUint32(b, s.check)
		b = binary.AppendVarint(b, s.count)
	}
	return b
}

func readSymbols(r *reader, next int) []symbol {
	start := r.uvarint()
	n := r.count(12)
	if r.err == nil && start != uint64(next) {
		r.fail("symbols out of order")
		return nil
	}
	syms := make([]symbol, n)
	for i := range syms {
		syms[i].sum = r.u64()
		syms[i].check = r.u32()
		v, k := binary.Varint(r.b)
		if k <= 0 {
			r.fail("bad symbol count")
			return nil
		}
		r.b = r.b[k:]
		syms[i].count = v
	}
	return syms
}

// owners maps the sketch keys of every bundle this node accounts for to
// the bundle, to read which of them a peer's sketch says it lacks.
func (l *local) owners() map[uint64]seqRef {
	if l.owner != nil {
		return l.owner
	}
	l.owner = make(map[uint64]seqRef, int(min(l.vec.Count(), 1<<20)))
	for _, o := range l.vec {
		ok := l.k.origin(o.Origin)
		next := uint64(1)
		for _, h := range append(slices.Clone(o.Holes), node.Range{Lo: o.Max + 1, Hi: o.Max + 1}) {
			for s := next; s < h.Lo; s++ {
				l.owner[l.k.itemKey(ok, s)] = seqRef{o.Origin, s}
			}
			next = h.Hi + 1
		}
	}
	return l.owner
}

// peerVector is a peer's vector as received.
type peerVector struct {
	mode    byte
	origins []peerOrigin
	small   uint64   // how many short holes the sketch holds
	symbols []symbol // the first coded symbols
}

// peerOrigin is what a peer has of one origin: every number up to its
// max except the gaps (the holes its vector gave as ranges) and the short
// holes its sketch gave.
type peerOrigin struct {
	short shortID
	node.OriginVector
	small map[uint64]bool // short holes this node holds itself, from the sketch
}

func parseVector(m *message) (*peerVector, error) {
	r := newReader(m)
	v := &peerVector{mode: r.byte()}
	if r.err == nil && v.mode != vectorExplicit && v.mode != vectorSketch {
		r.fail("unknown mode")
	}
	n := r.count(shortLen + 2)
	v.origins = make([]peerOrigin, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		var o peerOrigin
		copy(o.short[:], r.bytes(shortLen))
		o.Max = r.uvarint()
		runs := r.count(2)
		var prev uint64
		for j := 0; j < runs && r.err == nil; j++ {
			lo := prev + r.uvarint()
			span := r.uvarint()
			hi := lo + span
			if j > 0 && lo <= prev+1 || lo == 0 || hi < lo || hi >= o.Max {
				r.fail("bad hole")
				break
			}
			o.Holes = append(o.Holes, node.Range{Lo: lo, Hi: hi})
			prev = hi
		}
		v.origins = append(v.origins, o)
	}
	if v.mode == vectorSketch {
		v.small = r.uvarint()
		v.symbols = readSymbols(r, 0)
	}
	return v, r.end()
}

// peerSet is what a peer has, as reconciliation told this node: the
// origins of its vector this node can name, and what it learned since.
type peerSet struct {
	origins map[bundle.NodeID]*peerOrigin
	learned map[seqRef]bool
}

// newPeerSet resolves a peer's vector against this node's origins. A
// short ID this node cannot resolve is an origin it has nothing of, and
// so nothing to offer from.
func newPeerSet(l *local, v *peerVector, learned map[seqRef]bool) *peerSet {
	byShort := map[shortID]bundle.NodeID{}
	for _, o := range l.vec {
		byShort[l.k.origin(o.Origin).short] = o.Origin
	}
	p := &peerSet{origins: map[bundle.NodeID]*peerOrigin{}, learned: learned}
	for i := range v.origins {
		o := &v.origins[i]
		if id, ok := byShort[o.short]; ok {
			o.small = map[uint64]bool{}
			p.origins[id] = o
		}
	}
	return p
}

// addSketch records the short holes of the peer that the decoded sketch
// names among the bundles this node holds.
func (p *peerSet) addSketch(l *local, remoteOnly []uint64) {
	owners := l.owners()
	for _, key := range remoteOnly {
		if ref, ok := owners[key]; ok {
			if o := p.origins[ref.origin]; o != nil {
				o.small[ref.seq] = true
			}
		}
	}
}

// has reports whether the peer has the bundle.
func (p *peerSet) has(origin bundle.NodeID, seq uint64) bool {
	if p.learned[seqRef{origin, seq}] {
		return true
	}
	o := p.origins[origin]
	return o != nil && !o.small[seq] && o.Has(seq)
}

// missing returns the ranges of origin's numbers up to max that the peer
// lacks, ascending, merged where they touch.
func (p *peerSet) missing(origin bundle.NodeID, max uint64) []node.Range {
	o := p.origins[origin]
	if o == nil {
		return []node.Range{{Lo: 1, Hi: max}}
	}
	var rs []node.Range
	addRange := func(r node.Range) {
		if r.Lo > max {
			return
		}
		r.Hi = min(r.Hi, max)
		if n := len(rs); n > 0 && rs[n-1].Hi+1 >= r.Lo {
			rs[n-1].Hi = maxU64(rs[n-1].Hi, r.Hi)
			return
		}
		rs = append(rs, r)
	}
	small := make([]uint64, 0, len(o.small))
	for s := range o.small {
		small = append(small, s)
	}
	slices.Sort(small)
	gi, si := 0, 0
	for gi < len(o.Holes) || si < len(small) {
		if si == len(small) || gi < len(o.Holes) && o.Holes[gi].Lo < small[si] {
			addRange(o.Holes[gi])
			gi++
		} else {
			addRange(node.Range{Lo: small[si], Hi: small[si]})
			si++
		}
	}
	if o.Max < max {
		addRange(node.Range{Lo: o.Max + 1, Hi: max})
	}
	return rs
}

func maxU64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// maxSeq is the largest sequence number a store query takes.
const maxSeq = math.MaxInt64

// outMessage is a message to send.
type outMessage struct {
	t    FrameType
	body []byte
}

// reconciler runs one side of the reconciliation: it sends this node's
// vector, and from the peer's (explicit, or a sketch decoded with more
// symbols as needed) learns what the peer has. It needs at most three
// round trips: the vectors; more symbols; the holes themselves.
type reconciler struct {
	local   *local
	learned map[seqRef]bool
	pv      *peerVector
	dec     *symbolDecoder
	peer    *peerSet // set once the peer's inventory is known
	mode    string   // "explicit" or "sketch"
	symbols int      // coded symbols it took
	asked   int      // requests for more symbols or for the holes
	served  int      // such requests answered
}

func newReconciler(l *local, learned map[seqRef]bool) *reconciler {
	return &reconciler{local: l, learned: learned}
}

// start returns this node's vector message.
func (r *reconciler) start() []byte { return r.local.vectorMessage() }

// handle takes a vector, symbols or a request and returns the answer.
func (r *reconciler) handle(m *message) ([]outMessage, error) {
	switch m.t {
	case FrameVector:
		pv, err := parseVector(m)
		if err != nil {
			return nil, err
		}
		if r.peer != nil || r.pv != nil && (pv.mode != vectorExplicit || r.asked == 0) {
			return nil, protocolError("a second vector")
		}
		r.pv = pv
		if pv.mode == vectorExplicit {
			r.mode = "explicit"
			if r.dec != nil {
				r.mode = "sketch, then explicit"
			}
			r.peer = newPeerSet(r.local, pv, r.learned)
			return nil, nil
		}
		r.mode = "sketch"
		r.dec = newSymbolDecoder(r.local.small, r.local.k.check)
		return r.decode(pv.symbols), nil
	case FrameSymbols:
		if r.dec == nil || r.peer != nil {
			return nil, protocolError("symbols out of place")
		}
		rd := newReader(m)
		syms := readSymbols(rd, r.dec.received())
		if err := rd.end(); err != nil {
			return nil, err
		}
		return r.decode(syms), nil
	case FrameMore:
		rd := newReader(m)
		n := rd.uvarint()
		if err := rd.end(); err != nil {
			return nil, err
		}
		if r.local.enc == nil || r.served >= 2 || n > maxMoreSymbols {
			return nil, protocolError("request for symbols out of place")
		}
		r.served++
		if n == 0 {
			return []outMessage{{FrameVector, r.local.explicitMessage()}}, nil
		}
		return []outMessage{{FrameSymbols, r.local.moreSymbols(int(n))}}, nil
	}
	return nil, protocolError("%s is not a reconciliation message", m.t)
}

// decode feeds coded symbols to the decoder; when they do not suffice it
// asks for more, or for the holes themselves when that is cheaper or it
// asked once already.
func (r *reconciler) decode(syms []symbol) []outMessage {
	if r.dec.add(syms) {
		r.symbols = r.dec.received()
		r.peer = newPeerSet(r.local, r.pv, r.learned)
		r.peer.addSketch(r.local, r.dec.remote)
		return nil
	}
	more := min(3*r.dec.received(), maxMoreSymbols)
	if r.asked > 0 || more*symbolBytes > int(min(r.pv.small, 1<<40))*3+16 {
		more = 0
	}
	r.asked++
	return []outMessage{{FrameMore, binary.AppendUvarint(nil, uint64(more))}}
}
