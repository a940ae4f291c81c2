package bundle_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"

	"ferry/bundle"
)

type party struct {
	key ed25519.PrivateKey
	id  bundle.NodeID
	age *age.X25519Identity
}

func newParty(t testing.TB) party {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	ai, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	var id bundle.NodeID
	copy(id[:], key.Public().(ed25519.PublicKey))
	return party{key: key, id: id, age: ai}
}

// pack writes a bundle from src to dst with the given records and returns its bytes.
func pack(t testing.TB, src, dst party, recs map[bundle.RecordType][][]byte) []byte {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "b"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := bundle.Header{Kind: bundle.KindMessages, Source: src.id, Dest: bundle.ToNode(dst.id), Seq: 1,
		Created: time.Now(), Expires: time.Now().Add(time.Hour)}
	w, err := bundle.NewWriter(f, h, src.key, dst.age.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []bundle.RecordType{bundle.RecordMessage, bundle.RecordReceipt, bundle.RecordFile} {
		for _, r := range recs[typ] {
			if err := w.WriteRecord(typ, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != w.Size() {
		t.Fatalf("file is %d bytes, writer says %d", len(b), w.Size())
	}
	return b
}

func readAll(b []byte, id age.Identity) ([][]byte, error) {
	r, err := bundle.NewReader(bytes.NewReader(b), bundle.Limits{})
	if err != nil {
		return nil, err
	}
	rr, err := r.Open(id)
	if err != nil {
		return nil, err
	}
	defer rr.Close()
	var out [][]byte
	for {
		_, err := rr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		body, err := rr.Bytes()
		if err != nil {
			return nil, err
		}
		out = append(out, body)
	}
}

func TestRoundTrip(t *testing.T) {
	a, b := newParty(t), newParty(t)
	recs := [][]byte{[]byte("hello"), {}, bytes.Repeat([]byte("x"), 300000)}
	data := pack(t, a, b, map[bundle.RecordType][][]byte{bundle.RecordMessage: recs})
	got, err := readAll(data, b.age)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(recs) {
		t.Fatalf("got %d records, want %d", len(got), len(recs))
	}
	for i := range recs {
		if !bytes.Equal(got[i], recs[i]) {
			t.Errorf("record %d differs", i)
		}
	}
	if _, err := readAll(data, a.age); !errors.Is(err, bundle.ErrNotRecipient) {
		t.Errorf("wrong identity: got %v, want ErrNotRecipient", err)
	}
}

func TestEveryFlippedByteIsRefused(t *testing.T) {
	a, b := newParty(t), newParty(t)
	data := pack(t, a, b, map[bundle.RecordType][][]byte{bundle.RecordMessage: {[]byte("hello world")}})
	for i := range data {
		bad := bytes.Clone(data)
		bad[i] ^= 0x01
		if _, err := readAll(bad, b.age); err == nil {
			t.Fatalf("flipped byte %d of %d: accepted", i, len(data))
		}
	}
}

func TestEveryTruncationIsRefused(t *testing.T) {
	a, b := newParty(t), newParty(t)
	data := pack(t, a, b, map[bundle.RecordType][][]byte{bundle.RecordMessage: {[]byte("hello world")}})
	for i := 0; i < len(data); i++ {
		if _, err := readAll(data[:i], b.age); err == nil {
			t.Fatalf("truncated at %d of %d: accepted", i, len(data))
		}
	}
	if _, err := readAll(append(bytes.Clone(data), 0), b.age); !errors.Is(err, bundle.ErrTrailingData) {
		t.Fatalf("trailing byte: got %v, want ErrTrailingData", err)
	}
}

// TestIncompressibleIsStored: random records are stored in raw frames
// (the payload barely exceeds them), text around them still compresses,
// and everything reads back; a bundle of only stored records too.
func TestIncompressibleIsStored(t *testing.T) {
	a, b := newParty(t), newParty(t)
	random := func(n int) []byte {
		p := make([]byte, n)
		rand.Read(p)
		return p
	}
	text := bytes.Repeat([]byte("the boat leaves at dawn, bring the seed potatoes. "), 4000) // 200 KB
	for _, recs := range [][][]byte{
		{text, random(300 << 10), text, random(2500 << 10), []byte("small"), random(64 << 10), text},
		{random(1 << 20)},
	} {
		data := pack(t, a, b, map[bundle.RecordType][][]byte{bundle.RecordFile: recs})
		got, err := readAll(data, b.age)
		if err != nil {
			t.Fatal(err)
		}
		var randomBytes int
		for i := range recs {
			if !bytes.Equal(got[i], recs[i]) {
				t.Errorf("record %d differs", i)
			}
			if !bytes.Equal(recs[i], text) {
				randomBytes += len(recs[i])
			}
		}
		// Stored frames cost a few bytes per 128 KiB; age adds 16 per 64 KiB.
		if over := len(data) - randomBytes; over > 8<<10 {
			t.Errorf("bundle is %d bytes, %d over its random records: text or stored frames cost too much", len(data), over)
		}
	}
}
