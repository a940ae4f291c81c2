package bundle

import (
	"errors"
	"fmt"
)

// Sentinel errors. Each is wrapped with context; test with errors.Is.
var (
	// ErrNotBundle means the bytes do not start with a ferry magic.
	ErrNotBundle = errors.New("bundle: not a ferry bundle")
	// ErrVersion means a ferry bundle of a format version this reader
	// does not know.
	ErrVersion = errors.New("bundle: unsupported format version")
	// ErrSignature means the signature does not verify against the
	// header's source key: the bundle was forged or altered.
	ErrSignature = errors.New("bundle: bad signature")
	// ErrPayloadHash means the payload does not match the signed hash.
	ErrPayloadHash = errors.New("bundle: payload does not match its signed hash")
	// ErrTruncated means the bundle ended before its declared end.
	ErrTruncated = errors.New("bundle: truncated")
	// ErrTrailingData means bytes follow the declared end of the bundle.
	ErrTrailingData = errors.New("bundle: trailing data after payload")
	// ErrContentSize means the decompressed records do not add up to the
	// signed content size.
	ErrContentSize = errors.New("bundle: content does not match its signed size")
	// ErrNotRecipient means none of the given identities can decrypt the
	// payload.
	ErrNotRecipient = errors.New("bundle: not a recipient")
)

// LimitError reports a value over one of the [Limits]. It is returned
// before anything of that size is allocated or read.
type LimitError struct {
	What  string // what was measured, e.g. "header length"
	Got   uint64 // the value found, or a lower bound of it
	Limit uint64 // the limit it went over
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("bundle: %s %d exceeds limit %d", e.What, e.Got, e.Limit)
}

// FormatError reports malformed bytes in a field.
type FormatError struct {
	Field  string
	Reason string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("bundle: malformed %s: %s", e.Field, e.Reason)
}
