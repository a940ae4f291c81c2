package bundle

import (
	"encoding/binary"
	"fmt"
	"regexp"
	"slices"
	"time"
	"unicode/utf8"

	"filippo.io/age"
)

// RecordAnnounce holds one [Announcement]: a node telling the whole
// network who it is, roughly where, by which carriers it travels and
// which communities it has heard from. The value is a wire constant,
// pinned by a golden test; see docs/network.md.
const RecordAnnounce RecordType = 0x20

// PublicIdentity is the age identity of public bundles (announcements, to
// DestEveryone). Its secret is published here and in docs/network.md on
// purpose: every node, and anyone else, can open a public bundle. What
// makes an announcement trustworthy is the source's signature on the
// bundle, not the encryption, which only keeps one payload format for
// every bundle.
const PublicIdentity = "AGE-SECRET-KEY-19LKLVUU3HGQV8RDGDVLH4YHH6FJN66P06SKUETWDUEHDP3YJQYWSYQPU88"

// PublicRecipient is the age recipient of [PublicIdentity].
const PublicRecipient = "age1983qr8nfskgqsl9lxvpy0uhrvs0zvv8tx365qa8362astrpq0d8qrn6j2l"

// PublicKeys returns the identity and recipient of public bundles.
func PublicKeys() (*age.X25519Identity, *age.X25519Recipient) {
	id, err := age.ParseX25519Identity(PublicIdentity)
	if err != nil {
		panic("bundle: the public identity does not parse: " + err.Error())
	}
	return id, id.Recipient()
}

// Announcement limits.
const (
	MaxAnnounceSize     = 16 << 10 // one encoded announcement
	MaxAnnounceCard     = 2048     // the card, in bytes
	MaxAnnounceCarriers = 16
	MaxAnnounceHeard    = 128
	maxAnnounceLabel    = 16 // a carrier name
	maxAnnounceName     = 32 // a heard node's name
)

// announceHasLocation is the flag bit saying a location follows.
const announceHasLocation = 0x01

// Announcement is what a node says about itself to every node (record type
// [RecordAnnounce]). Its body:
//
//	flags      u8        0x01: a location follows; other bits must be 0
//	issued     uvarint   Unix seconds
//	card       string    1..2048 bytes: the node's signed card (docs/node.md)
//	[lat lon]  uvarint×2 only with flag 0x01: tenths of a degree plus 900
//	                     (0..1800) and plus 1800 (0..3600)
//	carriers   uvarint count (≤ 16), then each a string of 1..16 bytes
//	                     [a-z0-9-], strictly ascending
//	heard      uvarint count (≤ 128), then each:
//	             node     bytes[32]  strictly ascending
//	             name     string 1..32 bytes: what the announcer calls it
//	             last     uvarint    Unix seconds of the last contact
//	             carrier  string 0..16 bytes [a-z0-9-]: by which it was made
//	             bytes    uvarint    bytes carried with that node (both ways)
//
// The codec is canonical: a body that parses re-encodes to the same bytes.
// Checking the card (its signature, that it is the bundle's source) is
// the node's job.
type Announcement struct {
	Issued   time.Time
	Card     string
	Location *Tenths // nil: not given
	Carriers []string
	Heard    []Heard
}

// Tenths is a coarse location in tenths of a degree (about 11 km): the
// finest an announcement tells.
type Tenths struct {
	Lat int // -900..900
	Lon int // -1800..1800
}

// Heard is one community an announcer has been in contact with.
type Heard struct {
	Node    NodeID
	Name    string
	Last    time.Time
	Carrier string
	Bytes   uint64
}

var labelRE = regexp.MustCompile(`^[a-z0-9-]*$`)

// AppendBinary appends the announcement's encoding to b. It refuses an
// announcement that a reader would refuse.
func (a *Announcement) AppendBinary(b []byte) ([]byte, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	var flags byte
	if a.Location != nil {
		flags |= announceHasLocation
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(a.Issued.Unix()))
	b = appendString(b, a.Card)
	if a.Location != nil {
		b = binary.AppendUvarint(b, uint64(a.Location.Lat+900))
		b = binary.AppendUvarint(b, uint64(a.Location.Lon+1800))
	}
	b = binary.AppendUvarint(b, uint64(len(a.Carriers)))
	for _, c := range a.Carriers {
		b = appendString(b, c)
	}
	b = binary.AppendUvarint(b, uint64(len(a.Heard)))
	for _, h := range a.Heard {
		b = append(b, h.Node[:]...)
		b = appendString(b, h.Name)
		b = binary.AppendUvarint(b, uint64(h.Last.Unix()))
		b = appendString(b, h.Carrier)
		b = binary.AppendUvarint(b, h.Bytes)
	}
	if len(b) > MaxAnnounceSize {
		return nil, &LimitError{What: "announcement size", Got: uint64(len(b)), Limit: MaxAnnounceSize}
	}
	return b, nil
}

func (a *Announcement) check() error {
	fe := func(format string, args ...any) error {
		return &FormatError{Field: "announcement", Reason: fmt.Sprintf(format, args...)}
	}
	if a.Issued.Unix() < 0 {
		return fe("issued before 1970")
	}
	if l := len(a.Card); l == 0 || l > MaxAnnounceCard || !utf8.ValidString(a.Card) {
		return fe("card of %d bytes (want 1..%d of UTF-8)", l, MaxAnnounceCard)
	}
	if l := a.Location; l != nil && (l.Lat < -900 || l.Lat > 900 || l.Lon < -1800 || l.Lon > 1800) {
		return fe("location %d,%d tenths of a degree out of range", l.Lat, l.Lon)
	}
	if len(a.Carriers) > MaxAnnounceCarriers {
		return &LimitError{What: "announcement carriers", Got: uint64(len(a.Carriers)), Limit: MaxAnnounceCarriers}
	}
	for i, c := range a.Carriers {
		if c == "" || len(c) > maxAnnounceLabel || !labelRE.MatchString(c) {
			return fe("bad carrier name %q", c)
		}
		if i > 0 && c <= a.Carriers[i-1] {
			return fe("carriers not strictly ascending")
		}
	}
	if len(a.Heard) > MaxAnnounceHeard {
		return &LimitError{What: "announcement heard", Got: uint64(len(a.Heard)), Limit: MaxAnnounceHeard}
	}
	for i, h := range a.Heard {
		if h.Name == "" || len(h.Name) > maxAnnounceName || !labelRE.MatchString(h.Name) {
			return fe("bad node name %q", h.Name)
		}
		if len(h.Carrier) > maxAnnounceLabel || !labelRE.MatchString(h.Carrier) {
			return fe("bad carrier name %q", h.Carrier)
		}
		if h.Last.Unix() < 0 {
			return fe("contact before 1970")
		}
		if i > 0 && slices.Compare(h.Node[:], a.Heard[i-1].Node[:]) <= 0 {
			return fe("heard nodes not strictly ascending")
		}
	}
	return nil
}

// ParseAnnouncement decodes an announcement body. Every length is checked
// before anything of that size is allocated; a body that is not canonical,
// or has bytes left over, is refused.
func ParseAnnouncement(b []byte) (*Announcement, error) {
	if len(b) > MaxAnnounceSize {
		return nil, &LimitError{What: "announcement size", Got: uint64(len(b)), Limit: MaxAnnounceSize}
	}
	d := &decoder{b: b, field: "announcement"}
	a := &Announcement{}
	flags := d.byte()
	if flags&^announceHasLocation != 0 {
		d.fail(fmt.Sprintf("unknown flags 0x%02x", flags))
	}
	a.Issued = d.unix()
	a.Card = d.string(MaxAnnounceCard)
	if flags&announceHasLocation != 0 {
		lat, lon := d.uvarint(), d.uvarint()
		if lat > 1800 || lon > 3600 {
			d.fail("location out of range")
		}
		a.Location = &Tenths{Lat: int(lat) - 900, Lon: int(lon) - 1800}
	}
	if n := d.count(MaxAnnounceCarriers, "announcement carriers"); n > 0 {
		a.Carriers = make([]string, n)
		for i := range a.Carriers {
			a.Carriers[i] = d.string(maxAnnounceLabel)
		}
	}
	if n := d.count(MaxAnnounceHeard, "announcement heard"); n > 0 {
		a.Heard = make([]Heard, n)
		for i := range a.Heard {
			h := &a.Heard[i]
			copy(h.Node[:], d.bytes(32))
			h.Name = d.string(maxAnnounceName)
			h.Last = d.unix()
			h.Carrier = d.string(maxAnnounceLabel)
			h.Bytes = d.uvarint()
		}
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	if err := a.check(); err != nil {
		return nil, err
	}
	// Canonical: the varints were minimal and every field re-encodes.
	again, err := a.AppendBinary(nil)
	if err != nil {
		return nil, err
	}
	if string(again) != string(b) {
		return nil, &FormatError{Field: "announcement", Reason: "not canonical"}
	}
	return a, nil
}

// unix reads a time in Unix seconds.
func (d *decoder) unix() time.Time {
	v := d.uvarint()
	if v > 1<<40 {
		d.fail("time out of range")
		return time.Time{}
	}
	return time.Unix(int64(v), 0).UTC()
}

// count reads a count of items, refusing one over max before anything is
// allocated for them.
func (d *decoder) count(max uint64, what string) uint64 {
	v := d.uvarint()
	if d.err == nil && v > max {
		d.err = &LimitError{What: what, Got: v, Limit: max}
		return 0
	}
	return v
}
