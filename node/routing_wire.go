package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"ferry/bundle"
)

// routesMagic opens every routing summary of version 1.
const routesMagic = "FERRYRT\x00\x01"

// MaxRoutesSize bounds an encoded routing summary.
const MaxRoutesSize = len(routesMagic) + 32 + 8 + 10 + maxRoutes*34 + 10 + maxDelivered*32 + 10 + maxDelivered*20 + 64

// ErrRoutesSignature means a routing summary's signature does not verify.
var ErrRoutesSignature = errors.New("node: routing summary signature does not verify")

// Marshal encodes and signs the summary with the node's key:
//
//	magic "FERRYRT" 0x00 0x01 | node ID (32) | at (8, unix s, BE) |
//	predictabilities: uvarint n, n × (node ID (32) · p (2, BE, p × 65535)),
//	                  ascending by node ID |
//	delivered: origins uvarint o, o × node ID (32) ·
//	           uvarint d, d × (origin index uvarint · seq uvarint) |
//	ed25519 signature (64) over everything before it
func (r *Routes) Marshal(key ed25519.PrivateKey) ([]byte, error) {
	if string(key.Public().(ed25519.PublicKey)) != string(r.Node[:]) {
		return nil, errors.New("node: routes: key does not match the node")
	}
	ids := make([]bundle.NodeID, 0, len(r.P))
	for id := range r.P {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, compareNodeID)
	if len(ids) > maxRoutes {
		return nil, fmt.Errorf("node: routes: %d predictabilities exceed %d", len(ids), maxRoutes)
	}
	if len(r.Delivered) > maxDelivered {
		return nil, fmt.Errorf("node: routes: %d delivered bundles exceed %d", len(r.Delivered), maxDelivered)
	}
	b := append([]byte(routesMagic), r.Node[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.At.Unix()))
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = append(b, id[:]...)
		b = binary.BigEndian.AppendUint16(b, uint16(math.Round(min(max(r.P[id], 0), 1)*65535)))
	}
	origins, idx := []bundle.NodeID{}, map[bundle.NodeID]int{}
	for _, d := range r.Delivered {
		if _, ok := idx[d.Source]; !ok {
			idx[d.Source] = len(origins)
			origins = append(origins, d.Source)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(origins)))
	for _, o := range origins {
		b = append(b, o[:]...)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Delivered)))
	for _, d := range r.Delivered {
		b = binary.AppendUvarint(b, uint64(idx[d.Source]))
		b = binary.AppendUvarint(b, d.Seq)
	}
	return append(b, ed25519.Sign(key, b)...), nil
}

// ParseRoutes decodes a routing summary and verifies its signature
// against the node it names. Whether that node is trusted is the
// caller's call.
func ParseRoutes(b []byte) (*Routes, error) {
	bad := func(what string) (*Routes, error) { return nil, fmt.Errorf("node: routes: %s", what) }
	if len(b) > MaxRoutesSize {
		return bad(fmt.Sprintf("%d bytes exceed %d", len(b), MaxRoutesSize))
	}
	if !bytes.HasPrefix(b, []byte(routesMagic)) {
		return bad("not a ferry routing summary")
	}
	if len(b) < len(routesMagic)+32+8+ed25519.SignatureSize {
		return bad("truncated")
	}
	body, sig := b[:len(b)-ed25519.SignatureSize], b[len(b)-ed25519.SignatureSize:]
	p := body[len(routesMagic):]
	r := &Routes{P: map[bundle.NodeID]float64{}}
	copy(r.Node[:], p[:32])
	r.At = time.Unix(int64(binary.BigEndian.Uint64(p[32:40])), 0).UTC()
	p = p[40:]
	count := func(limit uint64, each int) (int, bool) {
		v, k := binary.Uvarint(p)
		if k <= 0 || k != uvarintLen(v) || v > limit || uint64(len(p)-k) < v*uint64(each) {
			return 0, false
		}
		p = p[k:]
		return int(v), true
	}
	n, ok := count(maxRoutes, 34)
	if !ok {
		return bad("malformed predictabilities")
	}
	var prev bundle.NodeID
	for i := range n {
		id := bundle.NodeID(p[:32])
		if i > 0 && compareNodeID(prev, id) >= 0 {
			return bad("predictabilities not ascending")
		}
		prev = id
		r.P[id] = float64(binary.BigEndian.Uint16(p[32:34])) / 65535
		p = p[34:]
	}
	no, ok := count(maxDelivered, 32)
	if !ok {
		return bad("malformed origins")
	}
	origins := make([]bundle.NodeID, no)
	for i := range origins {
		origins[i] = bundle.NodeID(p[:32])
		p = p[32:]
	}
	nd, ok := count(maxDelivered, 2)
	if !ok {
		return bad("malformed delivered bundles")
	}
	r.Delivered = make([]SeqRef, 0, nd)
	for range nd {
		oi, k := binary.Uvarint(p)
		if k <= 0 || k != uvarintLen(oi) || oi >= uint64(len(origins)) {
			return bad("malformed delivered bundle")
		}
		p = p[k:]
		seq, k := binary.Uvarint(p)
		if k <= 0 || k != uvarintLen(seq) || seq == 0 {
			return bad("malformed delivered bundle")
		}
		p = p[k:]
		r.Delivered = append(r.Delivered, SeqRef{Source: origins[oi], Seq: seq})
	}
	if len(p) != 0 {
		return bad("trailing bytes")
	}
	if !ed25519.Verify(r.Node.PublicKey(), body, sig) {
		return nil, ErrRoutesSignature
	}
	return r, nil
}

// SignedRoutes returns the node's routing summary, signed, with at most
// delivered bundles known delivered.
func (n *Node) SignedRoutes(ctx context.Context, delivered int) ([]byte, error) {
	r, err := n.RoutesSummary(ctx, delivered)
	if err != nil {
		return nil, err
	}
	return r.Marshal(n.id.Sign)
}

func uvarintLen(v uint64) int { return len(binary.AppendUvarint(nil, v)) }
