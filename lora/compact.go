package lora

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"

	"ferry/carriers"
)

// The compact session encoding of a Link. The session's frames, each a
// uvarint length and its bytes, are cut into chunks of up to chunkRaw
// bytes; each chunk goes on the link as
//
//	uvarint(len(body)<<2 | flags) | body
//
// flags bit 0: body is DEFLATE (RFC 1951) of the chunk, else the chunk
// itself; bit 1: the DEFLATE dictionary begins with the receiver's own
// first session frame (its hello, with the receiver's node key), which
// the sender had received. The dictionary then holds the sender's first
// session frame if it was whole before this chunk, and the last histKeep
// bytes the sender sent before the chunk. So the node keys and nonces of
// the two hellos, repeated in the offers and in every bundle header, cost
// a few bytes each time after the first, and a chunk that does not
// shrink (bundle data, encrypted) costs only its 1–3 byte prefix. Chunks
// are independent: no DEFLATE state spans turns, and the dictionaries are
// what both ends already hold.
const (
	chunkRaw = 1 << 10
	histKeep = 8 << 10

	chunkDeflate   = 1
	chunkPeerFirst = 2
)

// codec holds one end's compact-encoding state. Its user locks.
type codec struct {
	myFirst, peerFirst   []byte // the first session frame each end sent, framed
	sentHist, recvHist   []byte // the last histKeep bytes of each stream
	zin                  []byte // received encoded stream not yet decoded
	sentEarly, recvEarly []byte // each stream from its start until its first frame is whole
	// Session bytes before and after encoding, this end's direction.
	Raw, Encoded int64
}

func keepTail(h, b []byte) []byte {
	h = append(h, b...)
	if len(h) > histKeep {
		h = append(h[:0], h[len(h)-histKeep:]...)
	}
	return h
}

func firstUnit(b []byte) []byte {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return nil
	}
	return append([]byte(nil), b[:k+int(n)]...)
}

// encode turns the framed session stream raw (whole frames, from the
// start of a frame) into one chunk.
func (c *codec) encode(raw []byte) []byte {
	flags := 0
	var dict []byte
	if c.peerFirst != nil {
		flags |= chunkPeerFirst
		dict = append(dict, c.peerFirst...)
	}
	dict = append(dict, c.myFirst...) // as it was before this chunk
	dict = append(dict, c.sentHist...)
	if c.myFirst == nil {
		c.sentEarly = append(c.sentEarly, raw...)
		if c.myFirst = firstUnit(c.sentEarly); c.myFirst != nil {
			c.sentEarly = nil
		}
	}
	var buf bytes.Buffer
	zw, _ := flate.NewWriterDict(&buf, flate.BestCompression, dict)
	zw.Write(raw)
	zw.Close()
	body := raw
	if buf.Len() < len(raw) {
		body, flags = buf.Bytes(), flags|chunkDeflate
	}
	out := binary.AppendUvarint(nil, uint64(len(body))<<2|uint64(flags))
	out = append(out, body...)
	c.sentHist = keepTail(c.sentHist, raw)
	c.Raw += int64(len(raw))
	c.Encoded += int64(len(out))
	return out
}

// decode takes in-order encoded bytes and returns the session bytes of
// the chunks they complete.
func (c *codec) decode(b []byte) ([]byte, error) {
	c.zin = append(c.zin, b...)
	var raw []byte
	for {
		h, k := binary.Uvarint(c.zin)
		if k < 0 || h>>2 > 2*chunkRaw {
			return nil, fmt.Errorf("%w: lora: bad chunk header", carriers.ErrProtocol)
		}
		if k == 0 || uint64(len(c.zin)-k) < h>>2 {
			break
		}
		body := c.zin[k : k+int(h>>2)]
		chunk := body
		if h&chunkDeflate != 0 {
			var dict []byte
			if h&chunkPeerFirst != 0 {
				dict = append(dict, c.myFirst...)
			}
			dict = append(dict, c.peerFirst...)
			dict = append(dict, c.recvHist...)
			zr := flate.NewReaderDict(bytes.NewReader(body), dict)
			var err error
			chunk, err = io.ReadAll(io.LimitReader(zr, chunkRaw+1))
			if err != nil || len(chunk) > chunkRaw {
				return nil, fmt.Errorf("%w: lora: chunk does not decompress (%v)", carriers.ErrProtocol, err)
			}
		} else {
			chunk = append([]byte(nil), chunk...)
		}
		c.recvHist = keepTail(c.recvHist, chunk)
		raw = append(raw, chunk...)
		c.zin = c.zin[k+int(h>>2):]
		if c.peerFirst == nil {
			c.recvEarly = append(c.recvEarly, chunk...)
			if c.peerFirst = firstUnit(c.recvEarly); c.peerFirst != nil {
				c.recvEarly = nil
			}
		}
	}
	return raw, nil
}
