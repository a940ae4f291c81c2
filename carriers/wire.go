package carriers

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// FrameType is the first byte of every session frame, without its
// continuation bit. The values are wire constants (docs/sync.md).
type FrameType byte

// Session frame types.
const (
	FrameHello   FrameType = 0x01 // version, node key, nonce
	FrameAuth    FrameType = 0x02 // signature over both hellos, inventory digest
	FrameRefuse  FrameType = 0x03 // why the sender ends the session
	FrameVector  FrameType = 0x04 // version vector, holes or the first coded symbols
	FrameSymbols FrameType = 0x05 // more coded symbols
	FrameMore    FrameType = 0x06 // a request for more symbols, or for the holes
	FrameOffer   FrameType = 0x07 // what the receiver lacks, with what the sender knows of it
	FrameWant    FrameType = 0x08 // which offered bundles to send, from which byte
	FrameData    FrameType = 0x09 // bytes of a wanted bundle
	FrameGot     FrameType = 0x0a // a bundle received whole and taken in
	FrameEnd     FrameType = 0x0b // the end of the sender's transfers of a round
	FramePing    FrameType = 0x0c // nothing: the sender is alive
	FrameSkip    FrameType = 0x0d // a wanted bundle the sender can no longer send
	FrameBye     FrameType = 0x0e // the sender is done and sends nothing more
	FrameRoutes  FrameType = 0x0f // the sender's routing summary (node.Routes)
)

// frameMore marks a frame whose message continues in the next frame.
const frameMore = 0x80

func (t FrameType) String() string {
	switch t {
	case FrameHello:
		return "hello"
	case FrameAuth:
		return "auth"
	case FrameRefuse:
		return "refuse"
	case FrameVector:
		return "vector"
	case FrameSymbols:
		return "symbols"
	case FrameMore:
		return "more"
	case FrameOffer:
		return "offer"
	case FrameWant:
		return "want"
	case FrameData:
		return "data"
	case FrameGot:
		return "got"
	case FrameEnd:
		return "end"
	case FramePing:
		return "ping"
	case FrameSkip:
		return "skip"
	case FrameBye:
		return "bye"
	case FrameRoutes:
		return "routes"
	}
	return fmt.Sprintf("frame(0x%02x)", byte(t))
}

// maxMessage bounds a message reassembled from frames: an offer of a
// million bundles fits.
const maxMessage = 32 << 20

// message is one session message: a type and its body.
type message struct {
	t    FrameType
	body []byte
}

// frames splits a message into frames of at most mtu bytes.
func frames(t FrameType, body []byte, mtu int) [][]byte {
	room := mtu - 1
	var out [][]byte
	for {
		n := min(len(body), room)
		f := make([]byte, 0, n+1)
		if n < len(body) {
			f = append(f, byte(t)|frameMore)
		} else {
			f = append(f, byte(t))
		}
		out = append(out, append(f, body[:n]...))
		body = body[n:]
		if len(body) == 0 {
			return out
		}
	}
}

// assembler joins continued frames into messages of at most limit bytes
// (maxMessage if zero).
type assembler struct {
	t     FrameType
	body  []byte
	open  bool
	limit int
}

// add takes one frame and returns a message when it completes one.
func (a *assembler) add(f []byte) (*message, error) {
	if len(f) == 0 {
		return nil, protocolError("empty frame")
	}
	t, more := FrameType(f[0]&^frameMore), f[0]&frameMore != 0
	if t < FrameHello || t > FrameRoutes {
		return nil, protocolError("unknown frame type 0x%02x", f[0])
	}
	if a.open && t != a.t {
		return nil, protocolError("%s frame inside a %s message", t, a.t)
	}
	if more && t == FrameData {
		return nil, protocolError("a data frame cannot continue")
	}
	limit := a.limit
	if limit == 0 {
		limit = maxMessage
	}
	if len(a.body)+len(f)-1 > limit {
		return nil, protocolError("%s message over %d bytes", t, limit)
	}
	a.t = t
	a.body = append(a.body, f[1:]...)
	if more {
		a.open = true
		return nil, nil
	}
	m := &message{t: t, body: a.body}
	*a = assembler{limit: a.limit}
	return m, nil
}

// ErrProtocol means the peer sent bytes that break the session protocol:
// garbage, a frame out of place, a value out of range.
var ErrProtocol = errors.New("carriers: protocol error")

func protocolError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// reader decodes the fields of a message body; the first error sticks.
type reader struct {
	b   []byte
	msg FrameType
	err error
}

func newReader(m *message) *reader { return &reader{b: m.body, msg: m.t} }

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = protocolError("%s message: %s", r.msg, what)
	}
}

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail("truncated")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil || len(r.b) < n {
		r.fail("truncated")
		return make([]byte, n)
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a count of items each at least size bytes long, and checks
// that they can fit in what is left, so that nothing is allocated for
// items that are not there.
func (r *reader) count(size int) int {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)/max(size, 1)) {
		r.fail(fmt.Sprintf("%d items cannot fit in %d bytes", n, len(r.b)))
		return 0
	}
	return int(n)
}

func (r *reader) u64() uint64 { return binary.BigEndian.Uint64(r.bytes(8)) }
func (r *reader) u32() uint32 { return binary.BigEndian.Uint32(r.bytes(4)) }

func (r *reader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail(fmt.Sprintf("%d stray bytes", len(r.b)))
	}
	return r.err
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func (r *reader) string(max int) string {
	n := r.uvarint()
	if r.err == nil && n > uint64(max) {
		r.fail("string too long")
		return ""
	}
	s := string(r.bytes(int(n)))
	if !utf8.ValidString(s) {
		r.fail("string is not UTF-8")
		return ""
	}
	return s
}

// uvarintLen returns the encoded size of v.
func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
