package bundle_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"ferry/bundle"
)

func sampleAnnouncement() *bundle.Announcement {
	var a, b bundle.NodeID
	a[0], b[0] = 0x11, 0x22
	return &bundle.Announcement{
		Issued:   time.Unix(1_790_000_000, 0).UTC(),
		Card:     "ferry-card/1 name=north sig=x",
		Location: &bundle.Tenths{Lat: 462, Lon: -61},
		Carriers: []string{"tcp", "usb"},
		Heard: []bundle.Heard{
			{Node: a, Name: "river", Last: time.Unix(1_789_990_000, 0), Carrier: "usb", Bytes: 300},
			{Node: b, Name: "hill", Last: time.Unix(1_789_000_000, 0)},
		},
	}
}

// TestAnnouncementEncoding pins the encoding of docs/network.md byte by
// byte, and checks that it parses back.
func TestAnnouncementEncoding(t *testing.T) {
	a := sampleAnnouncement()
	got, err := a.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	// flags 01, issued, card, lat 462+900=1362 (d2 0a), lon -61+1800=1739 (cb 0d),
	// 2 carriers, 2 heard.
	var want []byte
	want = append(want, 0x01, 0x80, 0xf7, 0xc4, 0xd5, 0x06)
	want = append(want, byte(len(a.Card)))
	want = append(want, a.Card...)
	want = append(want, 0xd2, 0x0a, 0xcb, 0x0d)
	want = append(want, 0x02, 0x03, 't', 'c', 'p', 0x03, 'u', 's', 'b', 0x02)
	want = append(want, a.Heard[0].Node[:]...)
	want = append(want, 0x05, 'r', 'i', 'v', 'e', 'r', 0xf0, 0xa8, 0xc4, 0xd5, 0x06, 0x03, 'u', 's', 'b', 0xac, 0x02)
	want = append(want, a.Heard[1].Node[:]...)
	want = append(want, 0x04, 'h', 'i', 'l', 'l', 0xc0, 0xf2, 0x87, 0xd5, 0x06, 0x00, 0x00)
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding:\n got % x\nwant % x", got, want)
	}
	back, err := bundle.ParseAnnouncement(got)
	if err != nil {
		t.Fatal(err)
	}
	if back.Card != a.Card || *back.Location != *a.Location || len(back.Heard) != 2 || back.Heard[0].Bytes != 300 ||
		!back.Heard[1].Last.Equal(a.Heard[1].Last) || back.Carriers[1] != "usb" {
		t.Fatalf("parsed back as %+v", back)
	}
}

// TestAnnouncementRefusals: every malformed body is refused with a
// FormatError or LimitError that says what is wrong.
func TestAnnouncementRefusals(t *testing.T) {
	good, err := sampleAnnouncement().AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	// The writer refuses what a reader would.
	mutate := func(f func(a *bundle.Announcement)) {
		a := sampleAnnouncement()
		f(a)
		if _, err := a.AppendBinary(nil); err == nil {
			t.Errorf("the writer accepted %+v", a)
		}
	}
	mutate(func(a *bundle.Announcement) { a.Carriers = []string{"usb", "tcp"} })
	mutate(func(a *bundle.Announcement) { a.Heard[0], a.Heard[1] = a.Heard[1], a.Heard[0] })
	mutate(func(a *bundle.Announcement) { a.Location.Lat = 901 })
	mutate(func(a *bundle.Announcement) { a.Card = "" })
	mutate(func(a *bundle.Announcement) { a.Heard[0].Name = "Bad Name" })
	mutate(func(a *bundle.Announcement) { a.Carriers = make([]string, 17) })

	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "truncated"},
		{"truncated", good[:len(good)-1], "truncated"},
		{"stray byte", append(append([]byte{}, good...), 0), "stray"},
		{"unknown flag", append([]byte{0x03}, good[1:]...), "flags"},
		{"non-minimal issued", append([]byte{0x00, 0x80, 0x00}, good[6:]...), "minimally"},
		{"too many carriers", []byte{0x00, 0x01, 0x01, 'c', 0x11}, "announcement carriers"},
		{"huge card", []byte{0x00, 0x01, 0xff, 0xff, 0x03}, "string of"},
		{"too big", make([]byte, bundle.MaxAnnounceSize+1), "announcement size"},
	}
	for _, c := range cases {
		_, err := bundle.ParseAnnouncement(c.b)
		var fe *bundle.FormatError
		var le *bundle.LimitError
		if err == nil || (!errors.As(err, &fe) && !errors.As(err, &le)) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want a format or limit error about %q", c.name, err, c.want)
		}
	}
}

func TestPublicKeys(t *testing.T) {
	id, r := bundle.PublicKeys()
	if id.Recipient().String() != bundle.PublicRecipient || r.String() != bundle.PublicRecipient {
		t.Fatal("the public identity and recipient do not match")
	}
}

func FuzzParseAnnouncement(f *testing.F) {
	for _, b := range recordSeeds(f, bundle.RecordAnnounce) {
		f.Add(b)
	}
	good, err := sampleAnnouncement().AppendBinary(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{0x00, 0x00, 0x01, 'c', 0x00, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := bundle.ParseAnnouncement(b)
		if err != nil {
			var fe *bundle.FormatError
			var le *bundle.LimitError
			if !errors.As(err, &fe) && !errors.As(err, &le) {
				t.Fatalf("refused %x with %T %v, want a FormatError or LimitError", b, err, err)
			}
			return
		}
		out, err := a.AppendBinary(nil)
		if err != nil {
			t.Fatalf("parsed %x, but it does not encode: %v", b, err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("parsed %x, encodes as %x", b, out)
		}
	})
}
