package bundle

import (
	"io"
	"sync"
)

// The compressed payload goes to age (encryption), the payload hash and
// the file through a sink. Once a bundle is past asyncAfter bytes, the
// sink hands those steps to goroutines, a buffer at a time and in order,
// so that they run on another core while the encoder compresses: on a
// two-core Pi that is the difference between the steps adding up and
// overlapping. Small bundles (messages) never start a goroutine.
const (
	asyncAfter = 1 << 20
	sinkBuf    = 1 << 20
	sinkBufs   = 3 // buffers in flight at most: bounds memory to 3 MiB
)

var sinkBuffers = sync.Pool{New: func() any { b := make([]byte, 0, sinkBuf); return &b }}

type sink struct {
	w    io.Writer
	n    int64
	cur  *[]byte
	prev chan struct{} // closed once the buffer before cur is written
	slot chan struct{} // one token per buffer in flight

	mu  sync.Mutex
	err error // the first write error
}

// Write passes p on, now or (past asyncAfter bytes) in order on another
// goroutine. Calls must not overlap (the encoder and the stored frames
// take turns).
func (s *sink) Write(p []byte) (int, error) {
	if err := s.failed(); err != nil {
		return 0, err
	}
	if s.slot == nil && s.n+int64(len(p)) <= asyncAfter {
		s.n += int64(len(p))
		n, err := s.w.Write(p)
		if err != nil {
			s.setErr(err)
		}
		return n, err
	}
	if s.slot == nil {
		s.slot = make(chan struct{}, sinkBufs)
	}
	s.n += int64(len(p))
	for rest := p; len(rest) > 0; {
		if s.cur == nil {
			s.cur = sinkBuffers.Get().(*[]byte)
		}
		k := min(len(rest), sinkBuf-len(*s.cur))
		*s.cur = append(*s.cur, rest[:k]...)
		rest = rest[k:]
		if len(*s.cur) == sinkBuf {
			s.send()
		}
	}
	return len(p), s.failed()
}

// send writes the current buffer on a goroutine of its own, after the
// one before it; at most sinkBufs are in flight.
func (s *sink) send() {
	buf, prev, done := s.cur, s.prev, make(chan struct{})
	s.cur, s.prev = nil, done
	s.slot <- struct{}{}
	go func() {
		if prev != nil {
			<-prev
		}
		if s.failed() == nil {
			if _, err := s.w.Write(*buf); err != nil {
				s.setErr(err)
			}
		}
		*buf = (*buf)[:0]
		sinkBuffers.Put(buf)
		<-s.slot
		close(done)
	}()
}

// flush writes what is buffered and waits for every write.
func (s *sink) flush() error {
	if s.cur != nil && len(*s.cur) > 0 {
		s.send()
	}
	if s.prev != nil {
		<-s.prev
	}
	return s.failed()
}

func (s *sink) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *sink) setErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}
