package carriers

import (
	"container/heap"
	"math"
)

// This file implements a rateless invertible Bloom lookup table (Yang,
// Gilad and Alizadeh, "Practical Rateless Set Reconciliation", SIGCOMM
// 2024) over 64-bit keys. A sender turns its set into an endless sequence
// of coded symbols; a receiver subtracts the symbols of its own set and
// peels the difference out of them. About 1.35-1.7 symbols per differing
// item suffice, whatever the size of the sets, and the sender need not
// know the difference in advance: it sends more symbols until the
// receiver has decoded.

// symbol is one coded symbol: the XOR of the keys mapped to it, the XOR
// of their checksums, and how many keys were added minus how many were
// removed.
type symbol struct {
	sum   uint64
	check uint32
	count int64
}

func (s *symbol) add(key uint64, check uint32, sign int64) {
	s.sum ^= key
	s.check ^= check
	s.count += sign
}

func (s *symbol) zero() bool { return s.sum == 0 && s.check == 0 && s.count == 0 }

// symbolMapping yields the ascending indices of the coded symbols a key
// is added to: index 0 always, then index i with probability 1/(1+i/2).
// It is deterministic from its seed, so that both ends map a key alike.
// The float arithmetic is IEEE-exact (a square root, a division, a
// multiplication, each rounded once) and so the same on every platform.
type symbolMapping struct {
	prng uint64
	last uint64
}

// mappingEnd is past any index a session produces; a mapping that gets
// there stays there.
const mappingEnd = 1 << 62

func newMapping(key uint64) symbolMapping { return symbolMapping{prng: splitmix64(key)} }

func (m *symbolMapping) next() uint64 {
	if m.last >= mappingEnd {
		return mappingEnd
	}
	m.prng *= 0xda942042e4dd58b5
	u := float64(1<<32) / math.Sqrt(float64(m.prng)+1) // (1-x)^(-1/2) for x uniform in [0,1)
	step := math.Ceil((float64(m.last) + 1.5) * (u - 1))
	switch {
	case step < 1:
		m.last++
	case float64(m.last)+step >= mappingEnd:
		m.last = mappingEnd
	default:
		m.last += uint64(step)
	}
	return m.last
}

// mappedKey is a key with its checksum and where it maps next.
type mappedKey struct {
	key   uint64
	check uint32
	m     symbolMapping
}

// keyHeap orders keys by the next index they map to.
type keyHeap []*mappedKey

func (h keyHeap) Len() int           { return len(h) }
func (h keyHeap) Less(i, j int) bool { return h[i].m.last < h[j].m.last }
func (h keyHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *keyHeap) Push(x any)        { *h = append(*h, x.(*mappedKey)) }
func (h *keyHeap) Pop() any {
	old := *h
	k := old[len(old)-1]
	*h = old[:len(old)-1]
	return k
}

// symbolEncoder produces the coded symbols of a set of keys, in order.
type symbolEncoder struct {
	keys    keyHeap
	next    uint64 // index of the next symbol
	checker func(uint64) uint32
}

func newSymbolEncoder(keys []uint64, checker func(uint64) uint32) *symbolEncoder {
	e := &symbolEncoder{checker: checker, keys: make(keyHeap, 0, len(keys))}
	for _, k := range keys {
		e.keys = append(e.keys, &mappedKey{key: k, check: checker(k), m: newMapping(k)})
	}
	heap.Init(&e.keys)
	return e
}

// produce returns the next n symbols.
func (e *symbolEncoder) produce(n int) []symbol {
	out := make([]symbol, n)
	for i := range out {
		idx := e.next + uint64(i)
		for len(e.keys) > 0 && e.keys[0].m.last == idx {
			k := e.keys[0]
			out[i].add(k.key, k.check, 1)
			k.m.next()
			heap.Fix(&e.keys, 0)
		}
	}
	e.next += uint64(n)
	return out
}

// symbolDecoder recovers the difference between a remote set, whose
// symbols arrive in order, and a local set.
type symbolDecoder struct {
	local   *symbolEncoder
	checker func(uint64) uint32
	cs      []symbol // remote minus local, with recovered keys peeled off
	peeled  keyHeap  // recovered keys, to peel off symbols still to come
	signs   map[uint64]int64
	remote  []uint64 // keys only the remote set holds
	localO  []uint64 // keys only the local set holds
	pure    []int
}

func newSymbolDecoder(local []uint64, checker func(uint64) uint32) *symbolDecoder {
	return &symbolDecoder{local: newSymbolEncoder(local, checker), checker: checker, signs: map[uint64]int64{}}
}

// received returns how many symbols have arrived.
func (d *symbolDecoder) received() int { return len(d.cs) }

// add takes the next remote symbols and peels what it can. It reports
// whether the difference is now fully decoded.
func (d *symbolDecoder) add(remote []symbol) bool {
	local := d.local.produce(len(remote))
	for i, r := range remote {
		idx := uint64(len(d.cs))
		s := symbol{sum: r.sum ^ local[i].sum, check: r.check ^ local[i].check, count: r.count - local[i].count}
		for len(d.peeled) > 0 && d.peeled[0].m.last == idx {
			k := d.peeled[0]
			s.add(k.key, k.check, -d.signs[k.key])
			k.m.next()
			heap.Fix(&d.peeled, 0)
		}
		d.cs = append(d.cs, s)
		d.pure = append(d.pure, int(idx))
	}
	d.peel()
	return d.done()
}

// done reports whether every differing key has been recovered: symbol 0,
// to which every key maps, is then empty.
func (d *symbolDecoder) done() bool { return len(d.cs) > 0 && d.cs[0].zero() }

func (d *symbolDecoder) peel() {
	for len(d.pure) > 0 {
		i := d.pure[len(d.pure)-1]
		d.pure = d.pure[:len(d.pure)-1]
		s := d.cs[i]
		if s.count != 1 && s.count != -1 || d.checker(s.sum) != s.check {
			continue
		}
		if _, seen := d.signs[s.sum]; seen {
			continue
		}
		key, sign := s.sum, s.count
		d.signs[key] = sign
		if sign == 1 {
			d.remote = append(d.remote, key)
		} else {
			d.localO = append(d.localO, key)
		}
		// Take the key out of every symbol it maps to so far, and keep it
		// to take out of those still to come.
		mk := &mappedKey{key: key, check: s.check, m: newMapping(key)}
		for mk.m.last < uint64(len(d.cs)) {
			j := mk.m.last
			d.cs[j].add(key, mk.check, -sign)
			if c := d.cs[j].count; c == 1 || c == -1 {
				d.pure = append(d.pure, int(j))
			}
			mk.m.next()
		}
		heap.Push(&d.peeled, mk)
	}
}

// splitmix64 is the SplitMix64 finalizer: a fast bijective mixer.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
