package usb

import (
	"io"
	"sync"
)

// readAhead reads r on a goroutine of its own, up to aheadBlocks blocks
// before the reader: reading a bundle off the stick (the system calls and
// the copies out of the page cache) then runs beside verifying,
// decrypting, decompressing and writing it, on the other core. Close
// stops the goroutine.
type readAhead struct {
	ch   chan aheadBlock
	stop chan struct{}
	once sync.Once
	cur  aheadBlock
	off  int
	err  error
}

type aheadBlock struct {
	buf *[]byte
	n   int
	err error
}

const (
	aheadSize   = 1 << 20
	aheadBlocks = 4
)

var aheadBufs = sync.Pool{New: func() any { b := make([]byte, aheadSize); return &b }}

func newReadAhead(r io.Reader) *readAhead {
	a := &readAhead{ch: make(chan aheadBlock, aheadBlocks), stop: make(chan struct{})}
	go func() {
		defer close(a.ch)
		for {
			buf := aheadBufs.Get().(*[]byte)
			n, err := io.ReadFull(r, *buf)
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			select {
			case a.ch <- aheadBlock{buf, n, err}:
			case <-a.stop:
				aheadBufs.Put(buf)
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return a
}

func (a *readAhead) Read(p []byte) (int, error) {
	for a.cur.buf == nil || a.off == a.cur.n {
		if a.cur.buf != nil {
			if a.cur.err != nil {
				return 0, a.cur.err
			}
			aheadBufs.Put(a.cur.buf)
			a.cur.buf = nil
		}
		b, ok := <-a.ch
		if !ok {
			return 0, io.ErrUnexpectedEOF
		}
		a.cur, a.off = b, 0
		if b.n == 0 && b.err != nil {
			return 0, b.err
		}
	}
	n := copy(p, (*a.cur.buf)[a.off:a.cur.n])
	a.off += n
	return n, nil
}

// Close stops the reading goroutine; it does not close r.
func (a *readAhead) Close() error {
	a.once.Do(func() {
		close(a.stop)
		for b := range a.ch {
			aheadBufs.Put(b.buf)
		}
	})
	return nil
}
