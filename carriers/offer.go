package carriers

import (
	"cmp"
	"encoding/binary"
	"slices"
	"time"

	"ferry/bundle"
	"ferry/node"
)

// Offer statuses: what the sender of an offer can do about a bundle the
// receiver lacks. Wire constants.
const (
	offerAvailable = 0x01 // the sender holds it and will send it if wanted
	offerDelivered = 0x02 // it reached its destination: nobody needs it
	offerExpired   = 0x03 // it expired
	offerDeclined  = 0x04 // the sender knows of it but did not take it
	offerWithheld  = 0x05 // the sender holds it but will not send it now (quota)
)

// destUnknown is the destination type of a bundle known only by its
// origin and number.
const destUnknown bundle.DestType = 0x00

// offerItem is one bundle of an offer.
type offerItem struct {
	node.Entry
	status byte
}

func (it *offerItem) ref() seqRef { return seqRef{it.Source, it.Seq} }

// statusOf says what this node can do about a bundle it accounts for.
func statusOf(e *node.Entry) byte {
	switch {
	case e.Available():
		return offerAvailable
	case e.State == "expired" || e.State == node.StateKnown && e.Reason == node.KnownExpired:
		return offerExpired
	case e.State == node.StateKnown && e.Reason == node.KnownDeclined:
		return offerDeclined
	}
	return offerDelivered // applied here (the destination), or settled
}

// sortOffer puts what the receiver can take first, most urgent first:
// receipts, then messages, then archive data.
func sortOffer(items []offerItem) {
	slices.SortStableFunc(items, func(a, b offerItem) int {
		if c := cmp.Compare(rank(a.status), rank(b.status)); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Priority, b.Priority); c != 0 {
			return c
		}
		return a.Created.Compare(b.Created)
	})
}

func rank(status byte) int {
	if status == offerAvailable {
		return 0
	}
	return 1
}

// encodeOffer encodes an offer:
//
//	round uvarint | origins (uvarint n, n × 32-byte ID) |
//	destinations (uvarint n, n × (type, 32-byte ID unless everyone)) |
//	items (uvarint n, n × item)
//	item: origin index uvarint | seq uvarint | status | kind | priority |
//	      destination index uvarint | expires uvarint (unix s, 0 never) |
//	      size uvarint
func encodeOffer(round int, items []offerItem) []byte {
	origins, originIdx := []bundle.NodeID{}, map[bundle.NodeID]int{}
	dests, destIdx := []bundle.Destination{}, map[bundle.Destination]int{}
	for _, it := range items {
		if _, ok := originIdx[it.Source]; !ok {
			originIdx[it.Source] = len(origins)
			origins = append(origins, it.Source)
		}
		if _, ok := destIdx[it.Dest]; !ok {
			destIdx[it.Dest] = len(dests)
			dests = append(dests, it.Dest)
		}
	}
	b := binary.AppendUvarint(nil, uint64(round))
	b = binary.AppendUvarint(b, uint64(len(origins)))
	for _, o := range origins {
		b = append(b, o[:]...)
	}
	b = binary.AppendUvarint(b, uint64(len(dests)))
	for _, d := range dests {
		b = append(b, byte(d.Type))
		if d.Type == bundle.DestNode || d.Type == bundle.DestGroup {
			b = append(b, d.ID[:]...)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(items)))
	for _, it := range items {
		b = binary.AppendUvarint(b, uint64(originIdx[it.Source]))
		b = binary.AppendUvarint(b, it.Seq)
		b = append(b, it.status, byte(it.Kind), it.Priority)
		b = binary.AppendUvarint(b, uint64(destIdx[it.Dest]))
		var exp uint64
		if !it.Expires.IsZero() {
			exp = uint64(it.Expires.Unix())
		}
		b = binary.AppendUvarint(b, exp)
		b = binary.AppendUvarint(b, uint64(max(it.Size, 0)))
	}
	return b
}

func parseOffer(m *message) (int, []offerItem, error) {
	r := newReader(m)
	round := int(r.uvarint() & 0xffff)
	origins := make([]bundle.NodeID, r.count(32))
	for i := range origins {
		copy(origins[i][:], r.bytes(32))
	}
	dests := make([]bundle.Destination, r.count(1))
	for i := range dests {
		dests[i].Type = bundle.DestType(r.byte())
		switch dests[i].Type {
		case bundle.DestNode, bundle.DestGroup:
			copy(dests[i].ID[:], r.bytes(32))
		case bundle.DestEveryone, destUnknown:
		default:
			r.fail("unknown destination type")
		}
	}
	items := make([]offerItem, r.count(8))
	for i := range items {
		it := &items[i]
		oi := r.uvarint()
		it.Seq = r.uvarint()
		it.status = r.byte()
		it.Kind = bundle.Kind(r.byte())
		it.Priority = r.byte()
		di := r.uvarint()
		exp := r.uvarint()
		size := r.uvarint()
		if r.err != nil {
			break
		}
		if oi >= uint64(len(origins)) || di >= uint64(len(dests)) || it.Seq == 0 ||
			it.status < offerAvailable || it.status > offerWithheld || size > 1<<62 || exp > 1<<40 {
			r.fail("bad item")
			break
		}
		it.Source, it.Dest, it.Size = origins[oi], dests[di], int64(size)
		if exp != 0 {
			it.Expires = time.Unix(int64(exp), 0).UTC()
		}
	}
	return round, items, r.end()
}

// want asks for one offered bundle, from a byte on.
type want struct {
	index  int     // in the offer
	offset int64   // bytes the receiver has already
	id     [8]byte // with an offset: the first bytes of the bundle's ID
}

// encodeWant encodes a want:
//
//	round uvarint | uvarint n | n × (index delta uvarint | offset uvarint |
//	the ID's first 8 bytes if offset > 0)
func encodeWant(round int, ws []want) []byte {
	b := binary.AppendUvarint(nil, uint64(round))
	b = binary.AppendUvarint(b, uint64(len(ws)))
	prev := -1
	for _, w := range ws {
		b = binary.AppendUvarint(b, uint64(w.index-prev))
		prev = w.index
		b = binary.AppendUvarint(b, uint64(w.offset))
		if w.offset > 0 {
			b = append(b, w.id[:]...)
		}
	}
	return b
}

func parseWant(m *message, offered int) (int, []want, error) {
	r := newReader(m)
	round := int(r.uvarint() & 0xffff)
	ws := make([]want, r.count(2))
	prev := -1
	for i := range ws {
		d := r.uvarint()
		off := r.uvarint()
		if r.err != nil {
			break
		}
		if d == 0 || d > uint64(offered) || int64(prev)+int64(d) >= int64(offered) || off > 1<<62 {
			r.fail("bad item")
			break
		}
		ws[i].index = prev + int(d)
		prev = ws[i].index
		ws[i].offset = int64(off)
		if off > 0 {
			copy(ws[i].id[:], r.bytes(8))
		}
	}
	return round, ws, r.end()
}
