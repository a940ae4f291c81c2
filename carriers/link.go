package carriers

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"ferry/bundle"
)

// Link is one live connection to a peer, as a medium provides it: a
// reliable, ordered, full-duplex exchange of frames of at most
// Info().MTU bytes. A medium that loses frames (LoRa) retransmits below
// this interface; a byte stream (TCP) is framed by [NewStreamLink].
//
// Send and Recv may run at the same time, one goroutine each. Close may be
// called at any time from any goroutine; it makes a blocked Send or Recv
// return. Recv returns io.EOF when the peer closed the link in order, and
// an error wrapping [ErrFrameTooLarge] for a frame over the MTU. The slice
// Recv returns is valid until the next Recv.
type Link interface {
	Send(frame []byte) error
	Recv() ([]byte, error)
	Close() error
	Info() LinkInfo
}

// LinkInfo describes a link.
type LinkInfo struct {
	// Medium names the carrier, as custody records show it: "tcp",
	// "ble", "lora", "pipe".
	Medium string
	// MTU is the largest frame the link carries, at least MinMTU.
	MTU int
	// Rate is the link's rough speed in bytes per second; 0 means unknown.
	Rate int64
	// Remote is the peer's address, for people.
	Remote string
	// Peer is the node key the medium itself authenticated (the TLS
	// certificate's key), or the zero ID. The session checks that the
	// peer's hello names the same key.
	Peer bundle.NodeID
	// Binding is channel-binding material (a TLS exporter) that the
	// hello signatures cover, so that a hello cannot be relayed into
	// another channel; nil if the medium has none.
	Binding []byte
}

// MTU bounds. MinMTU is the smallest MTU the session protocol runs over
// (a LoRa frame); MaxMTU the largest a link may offer.
const (
	MinMTU = 200
	MaxMTU = 1 << 24
)

// ErrFrameTooLarge means a frame over the link's MTU was sent or received.
var ErrFrameTooLarge = errors.New("carriers: frame larger than the link's MTU")

// Dialer opens links to peers. Each medium that can reach a peer by
// address implements it: [*TCP] does.
type Dialer interface {
	// Dial opens a link to the node at addr. If peer is not the zero ID,
	// the link is refused unless the node there proves it holds that key.
	Dial(ctx context.Context, addr string, peer bundle.NodeID) (Link, error)
}

// streamLink frames a byte stream: each frame is a uvarint length and
// that many bytes.
type streamLink struct {
	rwc  io.ReadWriteCloser
	r    *bufio.Reader
	info LinkInfo
	buf  []byte
	wbuf []byte
}

// NewStreamLink makes a link of a reliable byte stream, such as a TCP or
// TLS connection: each frame is sent as its length (a uvarint) followed by
// its bytes.
func NewStreamLink(rwc io.ReadWriteCloser, info LinkInfo) Link {
	info.MTU = min(max(info.MTU, MinMTU), MaxMTU)
	return &streamLink{rwc: rwc, r: bufio.NewReaderSize(rwc, 64<<10), info: info}
}

func (l *streamLink) Send(frame []byte) error {
	if len(frame) > l.info.MTU {
		return fmt.Errorf("%w: %d bytes, MTU %d", ErrFrameTooLarge, len(frame), l.info.MTU)
	}
	l.wbuf = binary.AppendUvarint(l.wbuf[:0], uint64(len(frame)))
	l.wbuf = append(l.wbuf, frame...)
	_, err := l.rwc.Write(l.wbuf)
	return err
}

func (l *streamLink) Recv() ([]byte, error) {
	n, err := l.readLen()
	if err != nil {
		return nil, err
	}
	if n > uint64(l.info.MTU) {
		return nil, fmt.Errorf("%w: %d bytes, MTU %d", ErrFrameTooLarge, n, l.info.MTU)
	}
	if cap(l.buf) < int(n) {
		l.buf = make([]byte, n, max(int(n), 4<<10))
	}
	l.buf = l.buf[:n]
	if _, err := io.ReadFull(l.r, l.buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("carriers: link cut inside a frame: %w", io.ErrUnexpectedEOF)
		}
		return nil, err
	}
	return l.buf, nil
}

// readLen reads a frame's length, refusing one that could not fit the
// largest MTU before reading past it.
func (l *streamLink) readLen() (uint64, error) {
	var v uint64
	for i := 0; i < 4; i++ {
		c, err := l.r.ReadByte()
		if err != nil {
			if i > 0 && errors.Is(err, io.EOF) {
				return 0, fmt.Errorf("carriers: link cut inside a frame header: %w", io.ErrUnexpectedEOF)
			}
			return 0, err
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, nil
		}
	}
	return 0, fmt.Errorf("%w: a length of more than 28 bits", ErrFrameTooLarge)
}

func (l *streamLink) Close() error   { return l.rwc.Close() }
func (l *streamLink) Info() LinkInfo { return l.info }

// Pipe returns the two ends of an in-memory link with the given MTU, for
// tests and for nodes in one process. Closing either end closes the link:
// the other end first receives the frames already sent, then io.EOF.
func Pipe(mtu int) (Link, Link) {
	if mtu < MinMTU {
		mtu = MinMTU
	}
	p := &pipe{done: make(chan struct{})}
	ab, ba := make(chan []byte, 64), make(chan []byte, 64)
	a := &pipeEnd{p: p, in: ba, out: ab, info: LinkInfo{Medium: "pipe", MTU: mtu, Remote: "pipe:b"}}
	b := &pipeEnd{p: p, in: ab, out: ba, info: LinkInfo{Medium: "pipe", MTU: mtu, Remote: "pipe:a"}}
	return a, b
}

type pipe struct {
	once sync.Once
	done chan struct{}
}

type pipeEnd struct {
	p       *pipe
	in, out chan []byte
	info    LinkInfo
}

func (e *pipeEnd) Send(frame []byte) error {
	if len(frame) > e.info.MTU {
		return fmt.Errorf("%w: %d bytes, MTU %d", ErrFrameTooLarge, len(frame), e.info.MTU)
	}
	select {
	case <-e.p.done:
		return io.ErrClosedPipe
	default:
	}
	select {
	case e.out <- append([]byte(nil), frame...):
		return nil
	case <-e.p.done:
		return io.ErrClosedPipe
	}
}

func (e *pipeEnd) Recv() ([]byte, error) {
	select {
	case f := <-e.in:
		return f, nil
	default:
	}
	select {
	case f := <-e.in:
		return f, nil
	case <-e.p.done:
		select {
		case f := <-e.in:
			return f, nil
		default:
			return nil, io.EOF
		}
	}
}

func (e *pipeEnd) Close() error {
	e.p.once.Do(func() { close(e.p.done) })
	return nil
}

func (e *pipeEnd) Info() LinkInfo { return e.info }
