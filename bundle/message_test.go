package bundle_test

import (
	"errors"
	"testing"
	"time"

	"ferry/bundle"
)

func TestFileHeaderPath(t *testing.T) {
	for _, path := range []string{"a", "a/b.txt", "photos/2026/bridge.jpg", "..a", "a..b/c"} {
		h := bundle.FileHeader{Path: path, Size: 1}
		b, err := h.AppendBinary(nil)
		if err != nil {
			t.Errorf("%q: %v", path, err)
			continue
		}
		if _, _, err := bundle.ParseFileHeader(b); err != nil {
			t.Errorf("%q: %v", path, err)
		}
	}
	for _, path := range []string{"", ".", "..", "../a", "a/../b", "/etc/passwd", "a//b", "a/", "./a", "a/.", "\xff"} {
		h := bundle.FileHeader{Path: path, Size: 1}
		if _, err := h.AppendBinary(nil); !isFormatError(err) {
			t.Errorf("AppendBinary %q: got %v, want a FormatError", path, err)
		}
		b := append([]byte{byte(len(path))}, path...)
		if _, _, err := bundle.ParseFileHeader(append(b, 1, 0)); !isFormatError(err) {
			t.Errorf("ParseFileHeader %q: got %v, want a FormatError", path, err)
		}
	}
	if _, err := (&bundle.FileHeader{Path: "a", Size: 1, Offset: 2}).AppendBinary(nil); !isFormatError(err) {
		t.Errorf("offset past the end: got %v, want a FormatError", err)
	}
}

func TestMessageTime(t *testing.T) {
	for _, c := range []struct {
		created time.Time
		want    time.Time
	}{
		{time.Time{}, time.Unix(0, 0)},
		{time.Unix(0, 0), time.Unix(0, 0)},
		{time.UnixMilli(1700000000123), time.UnixMilli(1700000000123)},
		{time.Date(2026, 3, 14, 9, 26, 53, 589_999_999, time.UTC), time.Date(2026, 3, 14, 9, 26, 53, 589_000_000, time.UTC)},
	} {
		m := bundle.Message{Seq: 1, Created: c.created, From: "a", To: "b"}
		b, err := m.AppendBinary(nil)
		if err != nil {
			t.Errorf("%v: %v", c.created, err)
			continue
		}
		got, err := bundle.ParseMessage(b)
		if err != nil {
			t.Errorf("%v: %v", c.created, err)
			continue
		}
		if !got.Created.Equal(c.want) {
			t.Errorf("%v reads back as %v, want %v", c.created, got.Created, c.want)
		}
	}
	m := bundle.Message{Seq: 1, Created: time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC), From: "a", To: "b"}
	if _, err := m.AppendBinary(nil); !isFormatError(err) {
		t.Errorf("a time before 1970: got %v, want a FormatError", err)
	}
	r := bundle.Receipt{State: bundle.ReceiptRead, At: time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := r.AppendBinary(nil); !isFormatError(err) {
		t.Errorf("a receipt time before 1970: got %v, want a FormatError", err)
	}
	// Unix milliseconds past 2^63-1 do not fit a time.
	tooLate := []byte{0x00, 0x01, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x01, 'a', 0x01, 'b', 0x00}
	if _, err := bundle.ParseMessage(tooLate); !isFormatError(err) {
		t.Errorf("a time of 2^63 ms: got %v, want a FormatError", err)
	}
}

func TestRecordVarintsAreMinimal(t *testing.T) {
	for name, b := range map[string][]byte{
		"seq":   {0x00, 0x81, 0x00, 0x00, 0x01, 'a', 0x01, 'b', 0x00},
		"from":  {0x00, 0x01, 0x00, 0x81, 0x00, 'a', 0x01, 'b', 0x00},
		"body":  {0x00, 0x01, 0x00, 0x01, 'a', 0x01, 'b', 0x80, 0x00},
		"valid": {0x00, 0x01, 0x00, 0x01, 'a', 0x01, 'b', 0x00},
	} {
		_, err := bundle.ParseMessage(b)
		if name == "valid" {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		} else if !isFormatError(err) {
			t.Errorf("%s as a non-minimal varint: got %v, want a FormatError", name, err)
		}
	}
}

func isFormatError(err error) bool {
	var fe *bundle.FormatError
	return errors.As(err, &fe)
}
