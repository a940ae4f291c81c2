package bundle

import (
	"crypto/sha256"
	"io"
)

// Inspection is what [Inspect] finds in a bundle, valid or not.
type Inspection struct {
	Header         Header
	ID             ID
	Signature      [SignatureSize]byte
	SignatureValid bool
	PayloadOffset  int64
	PayloadLength  uint64
	// PayloadValid reports whether the payload was all there, matched
	// the signed hash and nothing followed it.
	PayloadValid bool
	// PayloadProblem says what was wrong with the payload, if anything.
	PayloadProblem error
}

// Inspect reads a whole bundle and reports its header, ID, signature and
// payload, including what is wrong with them, without decrypting. It
// returns an error only when the prefix cannot be parsed at all.
func Inspect(r io.Reader) (*Inspection, error) {
	p, err := readPrefix(r, DefaultLimits())
	if err != nil {
		return nil, err
	}
	in := &Inspection{
		Header:         *p.h,
		ID:             sha256.Sum256(p.signed),
		Signature:      p.sig,
		SignatureValid: p.sigValid,
		PayloadOffset:  int64(p.size),
		PayloadLength:  p.h.PayloadSize,
	}
	pr := &payloadReader{r: r, left: p.h.PayloadSize, want: p.h.PayloadHash, h: sha256.New()}
	if err := pr.drain(); err != nil {
		in.PayloadProblem = err
	} else {
		in.PayloadValid = true
	}
	return in, nil
}
