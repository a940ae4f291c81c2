package lora

import (
	"bufio"
	"errors"
	"io"
)

// KISS framing bytes (the KA9Q/K3MC TNC protocol RNode firmware speaks).
const (
	FEND  = 0xC0 // frame end
	FESC  = 0xDB // frame escape
	TFEND = 0xDC // transposed FEND, after FESC
	TFESC = 0xDD // transposed FESC, after FESC
)

// maxKISS bounds a decoded KISS frame (command byte and data): RNode's
// largest frame is 255 bytes of data; anything far longer is noise.
const maxKISS = 1 + 512

// ErrBadEscape means a FESC was followed by a byte other than TFEND or TFESC.
var ErrBadEscape = errors.New("lora: bad KISS escape")

// AppendKISS appends the KISS frame of command cmd with data to dst:
// FEND, cmd, data with FEND and FESC escaped, FEND.
func AppendKISS(dst []byte, cmd byte, data []byte) []byte {
	dst = append(dst, FEND)
	dst = appendEscaped(dst, cmd)
	for _, c := range data {
		dst = appendEscaped(dst, c)
	}
	return append(dst, FEND)
}

func appendEscaped(dst []byte, c byte) []byte {
	switch c {
	case FEND:
		return append(dst, FESC, TFEND)
	case FESC:
		return append(dst, FESC, TFESC)
	}
	return append(dst, c)
}

// A KISSReader reads KISS frames from a byte stream. Bytes before the
// first FEND, empty frames, frames with a bad escape and frames longer
// than 513 bytes are skipped and counted in Skipped.
type KISSReader struct {
	r   *bufio.Reader
	buf []byte
	// Skipped counts the bytes dropped as noise.
	Skipped int
	synced  bool
}

// NewKISSReader returns a reader of the KISS frames in r.
func NewKISSReader(r io.Reader) *KISSReader {
	return &KISSReader{r: bufio.NewReaderSize(r, 1024)}
}

// ReadFrame returns the next frame's command byte and data. The data is
// valid until the next call. Errors are the underlying reader's; an
// io.EOF inside a frame keeps the partial frame for the next call, since
// a serial port's read timeout also returns io.EOF.
func (k *KISSReader) ReadFrame() (cmd byte, data []byte, err error) {
	for {
		c, err := k.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		if !k.synced {
			if c == FEND {
				k.synced = true
				k.buf = k.buf[:0]
			} else {
				k.Skipped++
			}
			continue
		}
		if c == FEND {
			f := k.buf
			k.buf = k.buf[:0]
			if len(f) == 0 {
				continue
			}
			n, err := unescape(f)
			if err != nil || n == 0 {
				k.Skipped += len(f)
				continue
			}
			return f[0], f[1:n], nil
		}
		k.buf = append(k.buf, c)
		if len(k.buf) > 2*maxKISS {
			k.Skipped += len(k.buf)
			k.buf = k.buf[:0]
			k.synced = false
		}
	}
}

// unescape decodes f in place and returns the decoded length.
func unescape(f []byte) (int, error) {
	j := 0
	for i := 0; i < len(f); i++ {
		c := f[i]
		if c == FESC {
			i++
			if i == len(f) {
				return 0, ErrBadEscape
			}
			switch f[i] {
			case TFEND:
				c = FEND
			case TFESC:
				c = FESC
			default:
				return 0, ErrBadEscape
			}
		}
		f[j] = c
		j++
	}
	if j > maxKISS {
		return 0, ErrBadEscape
	}
	return j, nil
}
