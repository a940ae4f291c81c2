package ble

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
	"unicode/utf8"

	"ferry/carriers"
)

// Link is one BLE connection as a [carriers.Link]: session frames of up
// to [FrameMTU] bytes, cut into chunks of the negotiated ATT MTU − 3
// bytes, written to RX by the central and notified on TX by the
// peripheral. Credits keep either side from sending more chunks than the
// other has room for, so the receiving side never blocks go-ble's ATT
// loop: chunks are queued, and taken out by Recv.
//
// A peer that breaks the chunk layer (an unknown chunk, a chunk over the
// MTU, a lost or extra chunk, a frame over FrameMTU) is dropped: it is
// told the reason in a CLOSE chunk, and Recv returns a [*DropError].
type Link struct {
	info   carriers.LinkInfo
	chunk  int                // largest chunk, MTU − 3
	write  func([]byte) error // sends one chunk
	hangup func()             // disconnects
	window int                // chunks the peer may have in flight
	queue  int                // chunks this side buffers, window included

	wmu  sync.Mutex // serializes write
	wbuf []byte

	in chan []byte // data chunks, in order

	mu           sync.Mutex
	credit       int           // chunks the peer still takes
	wake         chan struct{} // credit arrived
	granted      int64         // chunks granted to the peer, in all
	received     int64         // data chunks received, in all
	consumed     int64         // data chunks taken out by Recv, in all
	grant        chan struct{} // wakes the granter
	rxSeq, txSeq byte
	ended        chan struct{} // closed once, with endErr set
	endErr       error
	peerClosed   chan struct{} // the peer's CLOSE arrived
	gone         chan struct{} // the connection went down
	goneOnce     sync.Once

	frame    []byte
	shutdown sync.Once // sends this side's CLOSE and hangs up
}

var _ carriers.Link = (*Link)(nil)

// ErrDisconnected means the BLE connection went down without a CLOSE.
var ErrDisconnected = errors.New("ble: disconnected")

// DropError says why this side dropped a peer that broke the chunk layer.
// It wraps carriers.ErrProtocol.
type DropError struct{ Reason string }

func (e *DropError) Error() string { return "ble: dropped the peer: " + e.Reason }

// Unwrap returns carriers.ErrProtocol.
func (e *DropError) Unwrap() error { return carriers.ErrProtocol }

// PeerClosedError says why the peer ended the link.
type PeerClosedError struct{ Reason string }

func (e *PeerClosedError) Error() string { return "ble: the peer dropped the link: " + e.Reason }

// linkConfig is what a link needs of its transport.
type linkConfig struct {
	info       carriers.LinkInfo
	attMTU     int
	write      func([]byte) error
	hangup     func()
	window     int // chunks the peer may have in flight (its credit)
	queue      int // chunks this side buffers; at least window
	peerWindow int // chunks the peer accepts; 0 until its CREDIT
}

func newLink(c linkConfig) *Link {
	c.info.Medium = "ble"
	c.info.MTU = FrameMTU
	c.queue = max(c.queue, c.window)
	l := &Link{
		info: c.info, chunk: chunkSize(c.attMTU), write: c.write, hangup: c.hangup,
		window: c.window, queue: c.queue, credit: c.peerWindow,
		in:         make(chan []byte, c.queue),
		grant:      make(chan struct{}, 1),
		wake:       make(chan struct{}, 1),
		ended:      make(chan struct{}),
		peerClosed: make(chan struct{}),
		gone:       make(chan struct{}),
		granted:    int64(c.window),
	}
	go l.granter()
	return l
}

// Info describes the link: medium "ble", frames of FrameMTU bytes.
func (l *Link) Info() carriers.LinkInfo { return l.info }

// ChunkSize returns the largest chunk the link sends: the negotiated ATT
// MTU − 3.
func (l *Link) ChunkSize() int { return l.chunk }

// Send cuts frame into chunks and writes them as the peer grants credit.
func (l *Link) Send(frame []byte) error {
	if len(frame) > FrameMTU {
		return fmt.Errorf("%w: %d bytes, MTU %d", carriers.ErrFrameTooLarge, len(frame), FrameMTU)
	}
	room := l.chunk - headerLen
	for {
		n := min(room, len(frame))
		if err := l.takeCredit(); err != nil {
			return err
		}
		l.mu.Lock()
		h := l.txSeq & seqMask
		l.txSeq++
		l.mu.Unlock()
		if n == len(frame) {
			h |= chunkLast
		}
		if err := l.send(h, frame[:n]); err != nil {
			return err
		}
		frame = frame[n:]
		if len(frame) == 0 {
			return nil
		}
	}
}

// takeCredit waits until the peer takes one more data chunk.
func (l *Link) takeCredit() error {
	for {
		l.mu.Lock()
		select {
		case <-l.ended:
			err := l.sendErr()
			l.mu.Unlock()
			return err
		default:
		}
		if l.credit > 0 {
			l.credit--
			l.mu.Unlock()
			return nil
		}
		l.mu.Unlock()
		select {
		case <-l.wake:
		case <-l.ended:
		}
	}
}

// sendErr is what Send returns once the link ended; l.mu is held.
func (l *Link) sendErr() error {
	if errors.Is(l.endErr, io.EOF) {
		return io.ErrClosedPipe
	}
	return l.endErr
}

// send writes one chunk: header h and body.
func (l *Link) send(h byte, body []byte) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.wbuf = append(append(l.wbuf[:0], h), body...)
	if err := l.write(l.wbuf); err != nil {
		l.end(fmt.Errorf("%w: %v", ErrDisconnected, err))
		return l.endError()
	}
	return nil
}

func (l *Link) endError() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.endErr
}

// Recv returns the next frame. It returns io.EOF after the peer's
// orderly CLOSE, a [*PeerClosedError] after a CLOSE with a reason, a
// [*DropError] when this side dropped the peer, and an error wrapping
// [ErrDisconnected] when the connection went down.
func (l *Link) Recv() ([]byte, error) {
	l.frame = l.frame[:0]
	for {
		var c []byte
		select {
		case c = <-l.in:
		default:
			select {
			case c = <-l.in:
			case <-l.ended:
				select {
				case c = <-l.in:
					if l.endError() == io.EOF {
						break
					}
					return nil, l.endError()
				default:
					return nil, l.endError()
				}
			}
		}
		l.frame = append(l.frame, c[headerLen:]...)
		l.consume()
		if len(l.frame) > FrameMTU {
			err := l.drop(fmt.Sprintf("a frame over %d bytes", FrameMTU))
			return nil, fmt.Errorf("%w: %w", carriers.ErrFrameTooLarge, err)
		}
		if c[0]&kindMask == chunkLast {
			return l.frame, nil
		}
	}
}

// consume counts a chunk taken out of the queue.
func (l *Link) consume() {
	l.mu.Lock()
	l.consumed++
	l.mu.Unlock()
	l.wakeGranter()
}

func (l *Link) wakeGranter() {
	select {
	case l.grant <- struct{}{}:
	default:
	}
}

// granter grants the peer credit again, from its own goroutine: the
// chunk handlers must not write (go-ble's GATT client holds its lock
// while it calls them). A chunk's credit comes back once the chunk left
// the transport for the queue (so that at most window chunks are ever in
// go-ble's hands) and while the queue has room (so that a receiver that
// does not read stops the sender), half a window at a time.
func (l *Link) granter() {
	batch := int64(max(l.window/2, 1))
	for {
		select {
		case <-l.grant:
		case <-l.ended:
			return
		}
		l.mu.Lock()
		target := min(l.received+int64(l.window), l.consumed+int64(l.queue))
		n := target - l.granted
		if n < batch {
			l.mu.Unlock()
			continue
		}
		l.granted += n
		l.mu.Unlock()
		if l.send(chunkCredit, binary.AppendUvarint(nil, uint64(n))) != nil {
			return
		}
	}
}

// deliver takes one chunk from the transport. It never blocks: go-ble
// calls it from its ATT loop.
func (l *Link) deliver(b []byte) {
	if len(b) == 0 {
		l.drop("an empty chunk")
		return
	}
	if len(b) > l.chunk {
		l.drop(fmt.Sprintf("a chunk of %d bytes, over the MTU − 3 of %d", len(b), l.chunk))
		return
	}
	switch h := b[0]; {
	case h&kindMask == chunkData || h&kindMask == chunkLast:
		l.deliverData(b)
	case h == chunkCredit:
		n, k := binary.Uvarint(b[1:])
		if k <= 0 || k != len(b)-1 || n == 0 || n > maxWindow {
			l.drop("a malformed credit")
			return
		}
		l.mu.Lock()
		l.credit += int(n)
		over := l.credit > maxWindow
		l.mu.Unlock()
		if over {
			l.drop("credit beyond any window")
			return
		}
		select {
		case l.wake <- struct{}{}:
		default:
		}
	case h == chunkClose:
		reason := b[1:]
		if !utf8.Valid(reason) {
			reason = []byte("(not UTF-8)")
		}
		l.mu.Lock()
		select {
		case <-l.peerClosed:
		default:
			close(l.peerClosed)
		}
		l.mu.Unlock()
		if len(reason) == 0 {
			l.end(io.EOF)
		} else {
			l.end(&PeerClosedError{Reason: string(reason)})
		}
	default:
		l.drop(fmt.Sprintf("an unknown chunk type 0x%02x", h))
	}
}

func (l *Link) deliverData(b []byte) {
	l.mu.Lock()
	select {
	case <-l.ended:
		l.mu.Unlock()
		return
	default:
	}
	seq := b[0] & seqMask
	if seq != l.rxSeq&seqMask {
		want := l.rxSeq & seqMask
		l.mu.Unlock()
		l.drop(fmt.Sprintf("chunk %d where %d was due (a chunk lost or sent twice)", seq, want))
		return
	}
	l.rxSeq++
	l.received++
	over := l.received > l.granted
	l.mu.Unlock()
	if over {
		l.drop(fmt.Sprintf("more chunks than the %d granted", l.window))
		return
	}
	select {
	case l.in <- append([]byte(nil), b...):
		l.wakeGranter()
	default:
		l.drop("more chunks than the queue holds")
	}
}

// end records why the link ended, once.
func (l *Link) end(err error) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.ended:
		return false
	default:
	}
	l.endErr = err
	close(l.ended)
	return true
}

// drop ends the link because the peer broke the chunk layer, tells the
// peer why, and hangs up.
func (l *Link) drop(reason string) error {
	l.end(&DropError{Reason: reason})
	l.shutdown.Do(func() {
		go func() {
			l.send(chunkClose, []byte(truncate(reason, min(maxReasonLen, l.chunk-headerLen))))
			l.hangup()
		}()
	})
	return l.endError()
}

// lost ends the link because the connection went down.
func (l *Link) lost() {
	l.end(ErrDisconnected)
	l.goneOnce.Do(func() { close(l.gone) })
}

// closeGrace is how long Close waits for the peer's CLOSE before it
// hangs up.
const closeGrace = 2 * time.Second

// Close ends the link: it sends an orderly CLOSE, makes a blocked Send
// or Recv return, and hangs up once the peer closed too (or after two
// seconds). It returns at once.
func (l *Link) Close() error {
	l.end(net.ErrClosed)
	l.shutdown.Do(func() {
		go func() {
			l.send(chunkClose, nil)
			t := time.NewTimer(closeGrace)
			defer t.Stop()
			select {
			case <-l.peerClosed:
			case <-l.gone:
			case <-t.C:
			}
			l.hangup()
		}()
	})
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
