package bundle_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"

	"ferry/bundle"
)

// The test vectors live in testdata/vectors, one bundle per file, in the
// style of the C2SP CCTV age vectors: a few "key: value" lines, a blank
// line, then the bundle's raw bytes. The keys are
//
//	expect:   success, header failure (NewReader refuses the bundle) or
//	          payload failure (NewReader accepts it, Open or Records refuse it)
//	error:    for a failure, what it wraps: the name of a sentinel (ErrSignature)
//	          or of an error type (LimitError, FormatError)
//	field:    the LimitError's What or the FormatError's Field
//	identity: the age identity that can open the payload
//	id:       the bundle ID, hex, whenever the header verifies
//	records:  for a success, the types of the records, in order
//	content:  for a success, the SHA-256 of the decompressed record stream
//	comment:  what the vector is about; may repeat
//
// TestGenerateVectors (vectors_gen_test.go) writes them; TestVectors checks
// them as they are committed.
const vectorDir = "testdata/vectors"

// A vector is one test vector file.
type vector struct {
	name     string
	expect   string
	err      string
	field    string
	identity string
	id       string
	records  []string
	content  string
	comments []string
	bundle   []byte
}

const (
	expectSuccess        = "success"
	expectHeaderFailure  = "header failure"
	expectPayloadFailure = "payload failure"
)

func (v *vector) marshal() []byte {
	var b bytes.Buffer
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	line("expect", v.expect)
	line("error", v.err)
	line("field", v.field)
	line("identity", v.identity)
	line("id", v.id)
	line("records", strings.Join(v.records, " "))
	line("content", v.content)
	for _, c := range v.comments {
		line("comment", c)
	}
	b.WriteString("\n")
	b.Write(v.bundle)
	return b.Bytes()
}

func parseVector(name string, data []byte) (*vector, error) {
	head, body, ok := bytes.Cut(data, []byte("\n\n"))
	if !ok {
		return nil, errors.New("no blank line after the header")
	}
	v := &vector{name: name, bundle: body}
	sc := bufio.NewScanner(bytes.NewReader(head))
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			return nil, fmt.Errorf("malformed header line %q", sc.Text())
		}
		switch key {
		case "expect":
			v.expect = value
		case "error":
			v.err = value
		case "field":
			v.field = value
		case "identity":
			v.identity = value
		case "id":
			v.id = value
		case "records":
			v.records = strings.Fields(value)
		case "content":
			v.content = value
		case "comment":
			v.comments = append(v.comments, value)
		default:
			return nil, fmt.Errorf("unknown header key %q", key)
		}
	}
	switch v.expect {
	case expectSuccess, expectHeaderFailure, expectPayloadFailure:
	default:
		return nil, fmt.Errorf("unknown expectation %q", v.expect)
	}
	if (v.expect == expectSuccess) != (v.err == "") {
		return nil, errors.New("a failure names its error, a success does not")
	}
	return v, nil
}

func readVectors(t testing.TB) []*vector {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(vectorDir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatalf("no vectors in %s", vectorDir)
	}
	var vs []*vector
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		v, err := parseVector(filepath.Base(name), data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		vs = append(vs, v)
	}
	return vs
}

var sentinels = map[string]error{
	"ErrNotBundle":    bundle.ErrNotBundle,
	"ErrVersion":      bundle.ErrVersion,
	"ErrSignature":    bundle.ErrSignature,
	"ErrPayloadHash":  bundle.ErrPayloadHash,
	"ErrTruncated":    bundle.ErrTruncated,
	"ErrTrailingData": bundle.ErrTrailingData,
	"ErrContentSize":  bundle.ErrContentSize,
	"ErrNotRecipient": bundle.ErrNotRecipient,
}

// checkError reports whether err is of the kind the vector expects.
func (v *vector) checkError(err error) error {
	if err == nil {
		return fmt.Errorf("accepted, want %s (%s)", v.expect, v.err)
	}
	switch v.err {
	case "LimitError":
		var le *bundle.LimitError
		if !errors.As(err, &le) {
			return fmt.Errorf("got %v, want a LimitError", err)
		}
		if le.What != v.field {
			return fmt.Errorf("got %v, want a LimitError on %s", err, v.field)
		}
	case "FormatError":
		var fe *bundle.FormatError
		if !errors.As(err, &fe) {
			return fmt.Errorf("got %v, want a FormatError", err)
		}
		if fe.Field != v.field {
			return fmt.Errorf("got %v, want a FormatError in %s", err, v.field)
		}
	default:
		target, ok := sentinels[v.err]
		if !ok {
			return fmt.Errorf("vector names an unknown error %q", v.err)
		}
		if !errors.Is(err, target) {
			return fmt.Errorf("got %v, want %v", err, target)
		}
	}
	return nil
}

// damagesPayload reports whether the vector's failure is one a carrier,
// which cannot decrypt the payload, must find too.
func (v *vector) damagesPayload() bool {
	switch v.err {
	case "ErrPayloadHash", "ErrTruncated", "ErrTrailingData":
		return true
	}
	return false
}

// openedRecord is a record read from a bundle.
type openedRecord struct {
	typ  bundle.RecordType
	body []byte
}

// openVector reads every record of a verified bundle.
func openVector(r *bundle.Reader, id age.Identity) ([]openedRecord, error) {
	rr, err := r.Open(id)
	if err != nil {
		return nil, err
	}
	defer rr.Close()
	var recs []openedRecord
	for {
		rec, err := rr.Next()
		if err == io.EOF {
			return recs, nil
		}
		if err != nil {
			return nil, err
		}
		body, err := rr.Bytes()
		if err != nil {
			return nil, err
		}
		if uint64(len(body)) != rec.Size {
			return nil, fmt.Errorf("record of %d bytes read as %d", rec.Size, len(body))
		}
		recs = append(recs, openedRecord{rec.Type, body})
	}
}

// contentHash returns the SHA-256 of the record stream the records came from.
func contentHash(recs []openedRecord) string {
	h := sha256.New()
	for _, r := range recs {
		h.Write(binary.AppendUvarint(nil, uint64(r.typ)))
		h.Write(binary.AppendUvarint(nil, uint64(len(r.body))))
		h.Write(r.body)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// parseRecord decodes a record body with the codec of its type.
func parseRecord(r openedRecord) error {
	var err error
	switch r.typ {
	case bundle.RecordMessage:
		_, err = bundle.ParseMessage(r.body)
	case bundle.RecordReceipt:
		_, err = bundle.ParseReceipt(r.body)
	case bundle.RecordFile:
		_, _, err = bundle.ParseFileHeader(r.body)
	}
	return err
}

func TestVectors(t *testing.T) {
	for _, v := range readVectors(t) {
		t.Run(v.name, func(t *testing.T) {
			id, err := age.ParseX25519Identity(v.identity)
			if err != nil {
				t.Fatalf("identity: %v", err)
			}
			r, err := bundle.NewReader(bytes.NewReader(v.bundle), bundle.Limits{})
			if v.expect == expectHeaderFailure {
				if err := v.checkError(err); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewReader: %v", err)
			}
			if got := r.ID().String(); got != v.id {
				t.Errorf("ID %s, want %s", got, v.id)
			}
			if end := r.PayloadOffset() + int64(r.Header().PayloadSize); v.expect == expectSuccess && end != int64(len(v.bundle)) {
				t.Errorf("payload ends at %d of %d bytes", end, len(v.bundle))
			}
			recs, err := openVector(r, id)
			if v.expect == expectPayloadFailure {
				if err := v.checkError(err); err != nil {
					t.Fatal(err)
				}
			} else {
				if err != nil {
					t.Fatalf("reading records: %v", err)
				}
				checkRecords(t, v, recs)
			}
			checkCarrier(t, v)
		})
	}
}

func checkRecords(t *testing.T, v *vector, recs []openedRecord) {
	t.Helper()
	var types []string
	for _, r := range recs {
		types = append(types, r.typ.String())
		if err := parseRecord(r); err != nil {
			t.Errorf("%s record: %v", r.typ, err)
		}
	}
	if !slices.Equal(types, v.records) {
		t.Errorf("records %q, want %q", types, v.records)
	}
	if got := contentHash(recs); got != v.content {
		t.Errorf("content hash %s, want %s", got, v.content)
	}
}

// checkCarrier reads the bundle as a carrier does, without decrypting it:
// it must find every damage to the payload, and accept the rest.
func checkCarrier(t *testing.T, v *vector) {
	t.Helper()
	r, err := bundle.NewReader(bytes.NewReader(v.bundle), bundle.Limits{})
	if err != nil {
		t.Fatalf("NewReader again: %v", err)
	}
	n, err := io.Copy(io.Discard, r.Payload())
	if v.damagesPayload() {
		if err := v.checkError(err); err != nil {
			t.Errorf("carrier: %v", err)
		}
		return
	}
	if err != nil {
		t.Errorf("carrier: %v", err)
	}
	if uint64(n) != r.Header().PayloadSize {
		t.Errorf("carrier copied %d bytes of %d", n, r.Header().PayloadSize)
	}
}
