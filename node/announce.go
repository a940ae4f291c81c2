package node

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"ferry/bundle"
)

// Announcements (docs/network.md): every node now and then seals a public
// bundle, addressed to everyone, that says who it is (its card), roughly
// where (a location the admin set, in tenths of a degree), by which
// carriers it travels, and which communities it was in contact with
// lately. Every node carries announcements on like any other bundle and
// keeps the newest of each node in its directory (directory.go).

// Announcement defaults.
const (
	// DefaultAnnounceTTL is how long an announcement travels and stays in
	// directories: long enough for sticks walked once a month.
	DefaultAnnounceTTL = 30 * 24 * time.Hour
	// DefaultAnnounceEvery is how often a running node announces itself.
	DefaultAnnounceEvery = 24 * time.Hour
	// PriorityAnnounce is the priority of announcements: small, and they
	// make the map; after receipts and messages, before the archive.
	PriorityAnnounce = 2
	// contactWindow bounds how far back an announcement reports contacts.
	contactWindow = 90 * 24 * time.Hour
	// maxDirectory bounds the directory: once it holds this many
	// unexpired entries, only nodes already in it (and peers) are taken
	// in, so that a chain of introductions cannot fill a node's disk.
	maxDirectory = 4096
	// maxAnnounceBundle bounds a whole announcement bundle: a bigger one is
	// refused before its payload is read.
	maxAnnounceBundle = 64 << 10
)

// Reasons an announcement is refused.
var (
	// ErrBadAnnouncement means the announcement does not hold together:
	// its card is not its signer's, does not verify, or is missing.
	ErrBadAnnouncement = errors.New("bad announcement")
	// ErrNotIntroduced wraps ErrUnknownSigner: the announcement's signer is
	// no trusted peer, and no announcement in the directory names it.
	ErrNotIntroduced = fmt.Errorf("%w that no trusted node has introduced", ErrUnknownSigner)
)

// StatusSuperseded is what Ingest reports for an announcement older than
// the one the directory holds for its node: it is recorded as seen, and
// neither kept nor carried.
const StatusSuperseded Status = "superseded"

// AnnounceOptions say what a node announces besides its card and contacts.
type AnnounceOptions struct {
	// Carriers are the carriers the node runs ("usb", "tcp", "lora",
	// "ble"); the carriers of its recent contacts are added.
	Carriers []string
	// TTL is how long the announcement travels; zero means
	// DefaultAnnounceTTL.
	TTL time.Duration
	// Addrs are addresses for the card, where peers reach the node.
	Addrs []string
}

// SetLocation sets the coarse location the node announces, rounded to a
// tenth of a degree (about 11 km); nil clears it.
func (n *Node) SetLocation(ctx context.Context, loc *Location) error {
	if loc == nil {
		return n.withTx(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `DELETE FROM meta WHERE key = 'location'`)
			return err
		})
	}
	if err := loc.check(); err != nil {
		return err
	}
	t := toTenths(loc)
	v := fmt.Sprintf("%d,%d", t.Lat, t.Lon)
	return n.withTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('location', ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, v)
		return err
	})
}

// Location returns the location the node announces, or nil.
func (n *Node) Location(ctx context.Context) (*Location, error) {
	var v string
	err := n.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'location'`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	la, lo, _ := strings.Cut(v, ",")
	lat, err1 := strconv.Atoi(la)
	lon, err2 := strconv.Atoi(lo)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("node: stored location %q is malformed", v)
	}
	return fromTenths(&bundle.Tenths{Lat: lat, Lon: lon}), nil
}

func toTenths(l *Location) *bundle.Tenths {
	if l == nil {
		return nil
	}
	return &bundle.Tenths{Lat: int(math.Round(l.Lat * 10)), Lon: int(math.Round(l.Lon * 10))}
}

func fromTenths(t *bundle.Tenths) *Location {
	if t == nil {
		return nil
	}
	return &Location{Lat: float64(t.Lat) / 10, Lon: float64(t.Lon) / 10}
}

// RecordContact notes a contact with a peer by a carrier at a time, with
// the bytes it carried both ways. Carriers that meet a peer call it (a
// stick notes the node that synced it before); announcements report the
// latest contact with each peer.
func (n *Node) RecordContact(ctx context.Context, peer bundle.NodeID, carrier string, at time.Time, bytes int64) error {
	if peer == (bundle.NodeID{}) || peer == n.ID() {
		return nil
	}
	return n.withTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO contacts (peer, carrier, last, bytes) VALUES (?, ?, ?, ?)
			ON CONFLICT (peer, carrier) DO UPDATE SET last = MAX(last, excluded.last), bytes = bytes + excluded.bytes`,
			peer[:], carrier, at.UnixMilli(), max(bytes, 0))
		return err
	})
}

// Contacts lists this node's latest contact with each trusted peer it has
// met within the last 90 days: by a carrier that noted it (RecordContact)
// or by a hand-over to the peer (MarkCarried), newest first.
func (n *Node) Contacts(ctx context.Context) ([]bundle.Heard, error) {
	since := n.now().Add(-contactWindow).UnixMilli()
	rows, err := n.db.QueryContext(ctx, `
		WITH c AS (
			SELECT peer, carrier, last, bytes FROM contacts WHERE last >= ?1
			UNION ALL
			SELECT h.peer, h.carrier, MAX(h.at), SUM(b.size) FROM handoffs h JOIN bundles b ON b.id = h.bundle
			WHERE h.at >= ?1 GROUP BY h.peer, h.carrier
		)
		SELECT p.id, p.name, c.carrier, c.last, c.bytes FROM c JOIN peers p ON p.id = c.peer
		ORDER BY p.id, c.last DESC`, since)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	at := map[bundle.NodeID]int{} // index in out
	var out []bundle.Heard
	for rows.Next() {
		var id []byte
		var h bundle.Heard
		var last, size int64
		if err := rows.Scan(&id, &h.Name, &h.Carrier, &last, &size); err != nil {
			return nil, err
		}
		h.Node, h.Last, h.Bytes = bundle.NodeID(id), time.UnixMilli(last).UTC().Truncate(time.Second), uint64(max(size, 0))
		if i, ok := at[h.Node]; ok { // the newest contact came first
			out[i].Bytes += h.Bytes
			continue
		}
		at[h.Node] = len(out)
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b bundle.Heard) int { return b.Last.Compare(a.Last) })
	return out, nil
}

// Announce seals this node's announcement, addressed to everyone, queues
// it for carrying and puts it in the node's own directory. It returns the
// bundle's ID.
func (n *Node) Announce(ctx context.Context, opts AnnounceOptions) (bundle.ID, error) {
	if opts.TTL == 0 {
		opts.TTL = DefaultAnnounceTTL
	}
	loc, err := n.Location(ctx)
	if err != nil {
		return bundle.ID{}, err
	}
	card, err := n.Card(loc, opts.Addrs)
	if err != nil {
		return bundle.ID{}, err
	}
	heard, err := n.Contacts(ctx)
	if err != nil {
		return bundle.ID{}, err
	}
	if len(heard) > bundle.MaxAnnounceHeard {
		heard = heard[:bundle.MaxAnnounceHeard] // the most recent
	}
	carriers := slices.Clone(opts.Carriers)
	for i, h := range heard {
		if !carrierLabel(h.Carrier) {
			heard[i].Carrier = "" // a medium's name the format cannot carry
		} else if h.Carrier != "" {
			carriers = append(carriers, h.Carrier)
		}
	}
	slices.Sort(carriers)
	carriers = slices.Compact(carriers)
	if len(carriers) > bundle.MaxAnnounceCarriers {
		carriers = carriers[:bundle.MaxAnnounceCarriers]
	}
	slices.SortFunc(heard, func(a, b bundle.Heard) int { return bytes.Compare(a.Node[:], b.Node[:]) })
	a := &bundle.Announcement{Issued: n.now().UTC().Truncate(time.Second), Card: card, Location: toTenths(loc),
		Carriers: carriers, Heard: heard}
	body, err := a.AppendBinary(nil)
	if err != nil {
		return bundle.ID{}, fmt.Errorf("node: announce: %w", err)
	}
	_, pub := bundle.PublicKeys()
	n.writeMu.Lock()
	defer n.writeMu.Unlock()
	var final bundle.Header
	id, _, err := n.sealLocked(ctx, bundle.Destination{Type: bundle.DestEveryone}, bundle.KindAnnounce, PriorityAnnounce, opts.TTL, pub,
		func(w *bundle.Writer) error { return w.WriteRecord(bundle.RecordAnnounce, body) })
	if err != nil {
		return bundle.ID{}, err
	}
	var old []bundle.ID
	err = n.withTxLocked(ctx, func(tx *sql.Tx) error {
		final, err = bundleHeader(ctx, tx, id)
		if err != nil {
			return err
		}
		old, err = n.storeAnnouncement(ctx, tx, id, &final, a)
		return err
	})
	if err != nil {
		return bundle.ID{}, err
	}
	n.dropBodies(old, "superseded announcement")
	return id, nil
}

// carrierLabel reports whether s can name a carrier in an announcement.
func carrierLabel(s string) bool {
	if len(s) > 16 {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// AnnounceIfStale announces the node when its last announcement is older
// than every (or there is none), and reports whether it did.
func (n *Node) AnnounceIfStale(ctx context.Context, opts AnnounceOptions, every time.Duration) (bool, error) {
	if every <= 0 {
		every = DefaultAnnounceEvery
	}
	self := n.ID()
	var last int64
	if err := n.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(created), 0) FROM bundles WHERE source = ? AND kind = ?`,
		self[:], bundle.KindAnnounce).Scan(&last); err != nil {
		return false, err
	}
	if last != 0 && n.now().Sub(time.Unix(last, 0)) < every {
		return false, nil
	}
	if _, err := n.Announce(ctx, opts); err != nil {
		return false, err
	}
	return true, nil
}

// bundleHeader reads back the header fields of a stored bundle that the
// directory needs.
func bundleHeader(ctx context.Context, q querier, id bundle.ID) (bundle.Header, error) {
	var h bundle.Header
	var src []byte
	var created, expires int64
	err := q.QueryRowContext(ctx, `SELECT source, seq, created, expires FROM bundles WHERE id = ?`, id[:]).
		Scan(&src, &h.Seq, &created, &expires)
	if err != nil {
		return h, fmt.Errorf("node: bundle %x: %w", id[:6], err)
	}
	h.Source, h.Created = bundle.NodeID(src), time.Unix(created, 0).UTC()
	if expires != 0 {
		h.Expires = time.Unix(expires, 0).UTC()
	}
	return h, nil
}

// ingestAnnouncement takes in an announcement: it checks the signer is
// trusted or introduced, reads the whole (small) bundle, checks the card
// inside is the signer's own, and then keeps the bundle for carrying and
// the announcement in the directory, unless the directory holds a newer
// one for that node.
func (n *Node) ingestAnnouncement(ctx context.Context, rd *bundle.Reader, res IngestResult) (IngestResult, error) {
	id, h := res.ID, res.Header
	refuse := func(err error) (IngestResult, error) { return res, &RefusedError{ID: &id, Reason: err} }
	if h.Dest.Type != bundle.DestEveryone {
		return refuse(fmt.Errorf("%w: an announcement must be addressed to everyone", ErrBadAnnouncement))
	}
	if size := rd.PayloadOffset() + int64(h.PayloadSize); size > maxAnnounceBundle {
		return refuse(&bundle.LimitError{What: "announcement bundle size", Got: uint64(size), Limit: maxAnnounceBundle})
	}
	if ok, err := n.mayAnnounce(ctx, h.Source); err != nil {
		return res, err
	} else if !ok {
		return refuse(fmt.Errorf("%w %s (approve it or add its card with 'ferry peer add' to accept it)", ErrNotIntroduced, h.Source.Short()))
	}
	if h.Expired(n.now()) {
		return refuse(fmt.Errorf("%w at %s", ErrExpired, h.Expires.Format("2006-01-02 15:04:05Z")))
	}
	if seen, err := n.seen(ctx, n.db, id); err != nil {
		return res, err
	} else if seen {
		res.Status = StatusDuplicate
		return res, nil
	}
	raw := append([]byte(nil), rd.Prefix()...)
	payload, err := io.ReadAll(rd.Payload())
	if err != nil {
		return refuse(err)
	}
	raw = append(raw, payload...)
	a, err := openAnnouncement(raw, n.lim)
	if err != nil {
		return refuse(err)
	}
	if err := checkAnnouncement(a, &h); err != nil {
		return refuse(err)
	}

	n.writeMu.Lock()
	defer n.writeMu.Unlock()
	if newer, err := n.holdsNewerAnnouncement(ctx, h.Source, a, &h); err != nil {
		return res, err
	} else if newer {
		err := n.withTxLocked(ctx, func(tx *sql.Tx) error {
			return insertBundle(ctx, tx, id, &h, int64(len(raw)), n.now().UnixMilli(), "superseded")
		})
		if err != nil {
			return res, err
		}
		res.Status = StatusSuperseded
		return res, nil
	}
	f, err := n.spool.create()
	if err != nil {
		return res, err
	}
	if _, err := f.Write(raw); err != nil {
		n.spool.discard(f)
		return res, fmt.Errorf("node: spool: %w", err)
	}
	if err := n.spool.commit(f, id); err != nil {
		return res, err
	}
	var old []bundle.ID
	err = n.withTxLocked(ctx, func(tx *sql.Tx) error {
		if seen, err := n.seen(ctx, tx, id); err != nil || seen {
			return err
		}
		if err := insertBundle(ctx, tx, id, &h, int64(len(raw)), n.now().UnixMilli(), "carry"); err != nil {
			return err
		}
		old, err = n.storeAnnouncement(ctx, tx, id, &h, a)
		return err
	})
	if err != nil {
		return res, err
	}
	n.dropBodies(old, "superseded announcement")
	res.Status = StatusStored
	return res, nil
}

// openAnnouncement decrypts a whole announcement bundle with the public
// identity and decodes its one announcement record; records of other
// types are skipped, as everywhere.
func openAnnouncement(raw []byte, lim bundle.Limits) (*bundle.Announcement, error) {
	rd, err := bundle.NewReader(bytes.NewReader(raw), lim)
	if err != nil {
		return nil, err
	}
	id, _ := bundle.PublicKeys()
	rr, err := rd.Open(id)
	if err != nil {
		return nil, err
	}
	defer rr.Close()
	var body []byte
	for {
		rec, err := rr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if rec.Type != bundle.RecordAnnounce {
			continue
		}
		if body != nil {
			return nil, fmt.Errorf("%w: more than one announcement record", ErrBadAnnouncement)
		}
		if rec.Size > bundle.MaxAnnounceSize {
			return nil, &bundle.LimitError{What: "announcement size", Got: rec.Size, Limit: bundle.MaxAnnounceSize}
		}
		if body, err = rr.Bytes(); err != nil {
			return nil, err
		}
	}
	if body == nil {
		return nil, fmt.Errorf("%w: no announcement record", ErrBadAnnouncement)
	}
	return bundle.ParseAnnouncement(body)
}

// checkAnnouncement checks that an announcement holds together with the
// bundle that carried it: its card verifies and is the signer's own.
func checkAnnouncement(a *bundle.Announcement, h *bundle.Header) error {
	c, err := ParseCard(a.Card)
	if err != nil {
		return fmt.Errorf("%w: its card: %v", ErrBadAnnouncement, strings.TrimPrefix(err.Error(), "node: "))
	}
	if c.ID != h.Source {
		return fmt.Errorf("%w: it carries the card of %s (%s) but is signed by %s", ErrBadAnnouncement, c.Name, c.ID.Short(), h.Source.Short())
	}
	for _, hd := range a.Heard {
		if hd.Node == h.Source {
			return fmt.Errorf("%w: it says it heard from itself", ErrBadAnnouncement)
		}
	}
	return nil
}

// mayAnnounce reports whether an announcement signed by src is taken in:
// src is this node, a trusted peer, already in the directory, or named in
// an announcement the directory holds (introduced) while the directory
// has room.
func (n *Node) mayAnnounce(ctx context.Context, src bundle.NodeID) (bool, error) {
	if src == n.ID() {
		return true, nil
	}
	var one int
	err := n.db.QueryRowContext(ctx, `SELECT 1 WHERE EXISTS (SELECT 1 FROM peers WHERE id = ?1)
		OR EXISTS (SELECT 1 FROM directory WHERE node = ?1 AND (expires = 0 OR expires > ?2))
		OR (EXISTS (SELECT 1 FROM directory_links l JOIN directory d ON d.node = l.node
			WHERE l.heard = ?1 AND (d.expires = 0 OR d.expires > ?2))
			AND (SELECT COUNT(*) FROM directory WHERE expires = 0 OR expires > ?2) < ?3)`,
		src[:], n.now().Unix(), maxDirectory).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// introduced lists the nodes named by an unexpired announcement in the
// directory: mayAnnounce takes their announcements in.
func (n *Node) introduced(ctx context.Context) (map[bundle.NodeID]bool, error) {
	rows, err := n.db.QueryContext(ctx, `SELECT DISTINCT l.heard FROM directory_links l JOIN directory d ON d.node = l.node
		WHERE (d.expires = 0 OR d.expires > ?1) AND ((SELECT COUNT(*) FROM directory WHERE expires = 0 OR expires > ?1) < ?2
			OR EXISTS (SELECT 1 FROM directory WHERE node = l.heard))`, n.now().Unix(), maxDirectory)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[bundle.NodeID]bool{}
	for rows.Next() {
		var id []byte
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out[bundle.NodeID(id)] = true
	}
	return out, rows.Err()
}

// holdsNewerAnnouncement reports whether the directory holds an
// announcement of src at least as new as a (by issue time, then the
// bundle's creation time and sequence number).
func (n *Node) holdsNewerAnnouncement(ctx context.Context, src bundle.NodeID, a *bundle.Announcement, h *bundle.Header) (bool, error) {
	var issued int64
	var held []byte
	err := n.db.QueryRowContext(ctx, `SELECT issued, bundle FROM directory WHERE node = ?`, src[:]).Scan(&issued, &held)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if issued != a.Issued.Unix() {
		return issued > a.Issued.Unix(), nil
	}
	old, err := bundleHeader(ctx, n.db, bundle.ID(held))
	if err != nil {
		return false, err
	}
	return old.Seq >= h.Seq, nil
}

// storeAnnouncement puts an announcement in the directory in place of the
// node's older one, and returns the bundles it supersedes (their bodies
// are dropped after the transaction commits).
func (n *Node) storeAnnouncement(ctx context.Context, tx *sql.Tx, id bundle.ID, h *bundle.Header, a *bundle.Announcement) ([]bundle.ID, error) {
	c, err := ParseCard(a.Card)
	if err != nil {
		return nil, err
	}
	var old []bundle.ID
	rows, err := tx.QueryContext(ctx, `SELECT id FROM bundles WHERE source = ? AND kind = ? AND id != ? AND state IN ('outbound', 'carry')`,
		h.Source[:], bundle.KindAnnounce, id[:])
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			rows.Close()
			return nil, err
		}
		old = append(old, bundle.ID(b))
	}
	rows.Close()
	for _, b := range old {
		if _, err := tx.ExecContext(ctx, `UPDATE bundles SET state = 'superseded' WHERE id = ?`, b[:]); err != nil {
			return nil, err
		}
	}
	var expires int64
	if !h.Expires.IsZero() {
		expires = h.Expires.Unix()
	}
	var lat, lon sql.NullInt64
	if a.Location != nil {
		lat, lon = sql.NullInt64{Int64: int64(a.Location.Lat), Valid: true}, sql.NullInt64{Int64: int64(a.Location.Lon), Valid: true}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO directory (node, name, card, issued, expires, lat, lon, carriers, bundle, received_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (node) DO UPDATE SET name = excluded.name, card = excluded.card, issued = excluded.issued,
			expires = excluded.expires, lat = excluded.lat, lon = excluded.lon, carriers = excluded.carriers,
			bundle = excluded.bundle, received_at = excluded.received_at`,
		h.Source[:], c.Name, a.Card, a.Issued.Unix(), expires, lat, lon, strings.Join(a.Carriers, ","), id[:], n.now().UnixMilli()); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM directory_links WHERE node = ?`, h.Source[:]); err != nil {
		return nil, err
	}
	for _, hd := range a.Heard {
		if _, err := tx.ExecContext(ctx, `INSERT INTO directory_links (node, heard, name, last, carrier, bytes) VALUES (?, ?, ?, ?, ?, ?)`,
			h.Source[:], hd.Node[:], hd.Name, hd.Last.Unix(), hd.Carrier, int64(min(hd.Bytes, math.MaxInt64))); err != nil {
			return nil, err
		}
	}
	return old, nil
}

// dropBodies removes the spooled bodies of bundles no longer carried.
func (n *Node) dropBodies(ids []bundle.ID, why string) {
	for _, id := range ids {
		if err := n.spool.remove(id); err != nil {
			n.log.Warn("removing "+why, "bundle", id, "err", err)
		}
	}
}
