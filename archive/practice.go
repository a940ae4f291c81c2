package archive

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"ferry/bundle"
	"ferry/node"
)

// The community practice: a member proposes an item, members endorse it,
// and once enough have, it is adopted: it enters the community's archive
// and is offered to every peer community. See docs/archive.md.

// Who may adopt a proposal that has enough endorsements.
const (
	AdoptByAdmins  = "admins"  // an admin adopts it
	AdoptByMembers = "members" // any member adopts it
	AdoptAuto      = "auto"    // the endorsement that reaches the threshold adopts it
)

// Proposal states.
const (
	StateOpen      = "open"
	StateAdopted   = "adopted"
	StateWithdrawn = "withdrawn"
)

// MaxThreshold bounds the endorsement threshold.
const MaxThreshold = 100

var (
	// ErrNoProposal means no proposal has the given number.
	ErrNoProposal = errors.New("archive: no such proposal")
	// ErrNotAllowed means the member may not do what was asked.
	ErrNotAllowed = errors.New("archive: not allowed")
	// ErrDecided means the proposal was adopted or withdrawn already.
	ErrDecided = errors.New("archive: the proposal is decided already")
	// ErrThreshold means the proposal lacks endorsements.
	ErrThreshold = errors.New("archive: not enough endorsements")
)

// Member is who acts: a user of the node, and whether they are an admin
// of the community (the web inbox's role).
type Member struct {
	Name  string
	Admin bool
}

// Settings are the community's rules for adopting items.
type Settings struct {
	Threshold int    `json:"threshold"` // endorsements needed, besides the proposer
	Adopt     string `json:"adopt"`     // AdoptByAdmins, AdoptByMembers or AdoptAuto
}

// DefaultSettings: one endorsement by another member, then an admin
// adopts.
var DefaultSettings = Settings{Threshold: 1, Adopt: AdoptByAdmins}

// GetSettings reads the community's settings.
func GetSettings(ctx context.Context, n *node.Node) (Settings, error) {
	return readSettings(ctx, n.DB())
}

func readSettings(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}) (Settings, error) {
	s := DefaultSettings
	var t, a sql.NullString
	err := q.QueryRowContext(ctx, `SELECT (SELECT value FROM meta WHERE key = 'archive_threshold'),
		(SELECT value FROM meta WHERE key = 'archive_adopt')`).Scan(&t, &a)
	if err != nil {
		return s, fmt.Errorf("archive: settings: %w", err)
	}
	if v, err := strconv.Atoi(t.String); t.Valid && err == nil {
		s.Threshold = v
	}
	if a.Valid {
		s.Adopt = a.String
	}
	return s, nil
}

// SetSettings changes the community's settings.
func SetSettings(ctx context.Context, n *node.Node, s Settings) error {
	if s.Threshold < 0 || s.Threshold > MaxThreshold {
		return fmt.Errorf("archive: a threshold is 0 to %d endorsements", MaxThreshold)
	}
	switch s.Adopt {
	case AdoptByAdmins, AdoptByMembers, AdoptAuto:
	default:
		return fmt.Errorf("archive: adopt is %q, %q or %q, not %q", AdoptByAdmins, AdoptByMembers, AdoptAuto, s.Adopt)
	}
	return n.Update(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('archive_threshold', ?), ('archive_adopt', ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, strconv.Itoa(s.Threshold), s.Adopt)
		return err
	})
}

// Proposal is an item proposed for the archive, with its endorsements.
type Proposal struct {
	ID        int64         `json:"id"`
	Item      string        `json:"item"`
	Version   uint64        `json:"version"`
	Meta      Meta          `json:"meta"`
	Files     int           `json:"files"`
	Size      uint64        `json:"size"`
	Proposer  string        `json:"proposer"`
	Proposed  time.Time     `json:"proposed"`
	State     string        `json:"state"`
	DecidedBy string        `json:"decided_by,omitempty"`
	Decided   *time.Time    `json:"decided,omitempty"`
	Endorsers []Endorsement `json:"endorsements"`
	Needed    int           `json:"needed"` // endorsements still missing
	manifest  *bundle.ArchiveManifest
}

// Endorsement is one member's support of a proposal.
type Endorsement struct {
	User string    `json:"user"`
	At   time.Time `json:"at"`
}

// Manifest returns the proposal's signed snapshot.
func (p *Proposal) Manifest() *bundle.ArchiveManifest { return p.manifest }

// Propose takes a snapshot of the tree at path (as [Add] does: its chunks
// go into the store) and files it as a proposal by member by, without
// entering it in the archive.
func Propose(ctx context.Context, n *node.Node, by Member, path string, item *[16]byte, meta Meta) (*Proposal, *AddReport, error) {
	if err := checkMember(ctx, n, by); err != nil {
		return nil, nil, err
	}
	rep, err := snapshot(ctx, n, path, item, meta)
	if err != nil {
		return nil, nil, err
	}
	m := rep.Manifest
	body, err := m.AppendBinary(nil)
	if err != nil {
		return nil, nil, err
	}
	var id int64
	err = n.Update(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO archive_proposals (item, version, title, proposer, proposed_at, body, state)
			VALUES (?, ?, ?, ?, ?, ?, 'open') RETURNING id`,
			m.Item[:], m.Version, m.Title, by.Name, n.Now().UnixMilli(), body).Scan(&id)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("archive: propose: %w", err)
	}
	p, err := GetProposal(ctx, n, id)
	return p, rep, err
}

// checkMember refuses a name that is not a user of the node.
func checkMember(ctx context.Context, n *node.Node, by Member) error {
	var one int
	err := n.DB().QueryRowContext(ctx, `SELECT 1 FROM users WHERE name = ?`, by.Name).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %q is not a member of this community", ErrNotAllowed, by.Name)
	}
	return err
}

// Endorse records by's endorsement of proposal id. The proposer's own
// endorsement does not count and is refused. When the community adopts
// automatically and this endorsement reaches the threshold, the proposal
// is adopted: the returned Adoption is then not nil.
func Endorse(ctx context.Context, n *node.Node, by Member, id int64) (*Proposal, *Adoption, error) {
	if err := checkMember(ctx, n, by); err != nil {
		return nil, nil, err
	}
	p, err := GetProposal(ctx, n, id)
	if err != nil {
		return nil, nil, err
	}
	if p.State != StateOpen {
		return p, nil, fmt.Errorf("%w (%s)", ErrDecided, p.State)
	}
	if p.Proposer == by.Name {
		return p, nil, fmt.Errorf("%w: a proposal needs the endorsement of members other than its proposer", ErrNotAllowed)
	}
	err = n.Update(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO archive_endorsements (proposal, user, at) VALUES (?, ?, ?)
			ON CONFLICT DO NOTHING`, id, by.Name, n.Now().UnixMilli())
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("archive: endorse: %w", err)
	}
	if p, err = GetProposal(ctx, n, id); err != nil {
		return nil, nil, err
	}
	s, err := GetSettings(ctx, n)
	if err != nil || s.Adopt != AdoptAuto || p.Needed > 0 {
		return p, nil, err
	}
	a, err := adopt(ctx, n, by, id, true)
	if err != nil {
		return p, nil, err
	}
	return a.Proposal, a, nil
}

// Adoption says what adopting a proposal did.
type Adoption struct {
	Proposal *Proposal `json:"proposal"`
	Offers   []Offer   `json:"offers"`
}

// Offer is an adopted item queued for one peer community.
type Offer struct {
	Peer    string `json:"peer"`
	Bundles int    `json:"bundles"`
	Bytes   int64  `json:"bytes"`
	Error   string `json:"error,omitempty"`
}

// Adopt enters proposal id into the community's archive, by member by,
// if the settings let by adopt and the proposal has enough endorsements;
// then it offers the item to every peer community (queues the bundles
// [Send] makes; carry them with any carrier). A failed offer is reported
// in the Adoption and does not undo the adoption; `ferry archive send`
// can offer the item again.
func Adopt(ctx context.Context, n *node.Node, by Member, id int64) (*Adoption, error) {
	if err := checkMember(ctx, n, by); err != nil {
		return nil, err
	}
	return adopt(ctx, n, by, id, false)
}

func adopt(ctx context.Context, n *node.Node, by Member, id int64, auto bool) (*Adoption, error) {
	var m *bundle.ArchiveManifest
	err := n.Update(ctx, func(tx *sql.Tx) error {
		s, err := readSettings(ctx, tx)
		if err != nil {
			return err
		}
		if !auto && s.Adopt == AdoptByAdmins && !by.Admin {
			return fmt.Errorf("%w: only an admin adopts items in this community", ErrNotAllowed)
		}
		var state string
		var body []byte
		var endorsements int
		err = tx.QueryRowContext(ctx, `SELECT state, body, (SELECT count(*) FROM archive_endorsements e
			WHERE e.proposal = p.id AND e.user != p.proposer) FROM archive_proposals p WHERE id = ?`, id).Scan(&state, &body, &endorsements)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w %d", ErrNoProposal, id)
		}
		if err != nil {
			return err
		}
		if state != StateOpen {
			return fmt.Errorf("%w (%s)", ErrDecided, state)
		}
		if endorsements < s.Threshold {
			return fmt.Errorf("%w: %d of %d", ErrThreshold, endorsements, s.Threshold)
		}
		if m, err = bundle.ParseArchiveManifest(body); err != nil {
			return err
		}
		if err := saveManifest(ctx, tx, m, true, n.Now()); err != nil {
			return err
		}
		decider := by.Name
		if auto {
			decider = "auto:" + by.Name
		}
		_, err = tx.ExecContext(ctx, `UPDATE archive_proposals SET state = 'adopted', decided_by = ?, decided_at = ? WHERE id = ?`,
			decider, n.Now().UnixMilli(), id)
		return err
	})
	if err != nil {
		return nil, err
	}
	offers, err := offer(ctx, n, m)
	if err != nil {
		return nil, err
	}
	p, err := GetProposal(ctx, n, id)
	if err != nil {
		return nil, err
	}
	return &Adoption{Proposal: p, Offers: offers}, nil
}

// offer queues the newest snapshot of m's item for every peer, and
// records each offer.
func offer(ctx context.Context, n *node.Node, m *bundle.ArchiveManifest) ([]Offer, error) {
	peers, err := n.Peers(ctx)
	if err != nil {
		return nil, err
	}
	var out []Offer
	for _, p := range peers {
		o := Offer{Peer: p.Name}
		rep, err := Send(ctx, n, m.Item, p.ID)
		if rep != nil {
			o.Bundles, o.Bytes = rep.Bundles, rep.BundleBytes
		}
		var msg any
		if err != nil {
			o.Error = err.Error()
			msg = o.Error
		}
		if _, err := n.DB().ExecContext(ctx, `INSERT INTO archive_offers (item, version, peer, at, bundles, bytes, error)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (item, version, peer) DO UPDATE SET
			at = excluded.at, bundles = excluded.bundles, bytes = excluded.bytes, error = excluded.error`,
			m.Item[:], m.Version, p.ID[:], n.Now().UnixMilli(), o.Bundles, o.Bytes, msg); err != nil {
			return out, fmt.Errorf("archive: record offer: %w", err)
		}
		out = append(out, o)
	}
	return out, nil
}

// Withdraw closes an open proposal without adopting it: its proposer or
// an admin may.
func Withdraw(ctx context.Context, n *node.Node, by Member, id int64) error {
	p, err := GetProposal(ctx, n, id)
	if err != nil {
		return err
	}
	if p.Proposer != by.Name && !by.Admin {
		return fmt.Errorf("%w: only its proposer or an admin withdraws a proposal", ErrNotAllowed)
	}
	return n.Update(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE archive_proposals SET state = 'withdrawn', decided_by = ?, decided_at = ?
			WHERE id = ? AND state = 'open'`, by.Name, n.Now().UnixMilli(), id)
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k == 0 {
			return ErrDecided
		}
		return nil
	})
}

// GetProposal returns proposal id.
func GetProposal(ctx context.Context, n *node.Node, id int64) (*Proposal, error) {
	ps, err := proposals(ctx, n, `WHERE p.id = ?`, id)
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("%w %d", ErrNoProposal, id)
	}
	return &ps[0], nil
}

// Proposals lists the proposals in state (all when empty), newest first.
func Proposals(ctx context.Context, n *node.Node, state string) ([]Proposal, error) {
	if state == "" {
		return proposals(ctx, n, `ORDER BY p.id DESC`)
	}
	return proposals(ctx, n, `WHERE p.state = ? ORDER BY p.id DESC`, state)
}

func proposals(ctx context.Context, n *node.Node, where string, args ...any) ([]Proposal, error) {
	s, err := GetSettings(ctx, n)
	if err != nil {
		return nil, err
	}
	rows, err := n.DB().QueryContext(ctx, `SELECT p.id, p.proposer, p.proposed_at, p.body, p.state,
		COALESCE(p.decided_by, ''), COALESCE(p.decided_at, 0) FROM archive_proposals p `+where, args...)
	if err != nil {
		return nil, err
	}
	var out []Proposal
	for rows.Next() {
		var p Proposal
		var proposed, decided int64
		var body []byte
		if err := rows.Scan(&p.ID, &p.Proposer, &proposed, &body, &p.State, &p.DecidedBy, &decided); err != nil {
			rows.Close()
			return nil, err
		}
		m, err := bundle.ParseArchiveManifest(body)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("archive: proposal %d: %w", p.ID, err)
		}
		p.manifest = m
		p.Item, p.Version = hex.EncodeToString(m.Item[:]), m.Version
		p.Meta = Meta{Title: m.Title, Description: m.Description, Tags: m.Tags, Lang: m.Lang, Source: m.Source}
		p.Files, p.Size = len(m.Files), m.Size()
		p.Proposed = time.UnixMilli(proposed).UTC()
		if decided != 0 {
			t := time.UnixMilli(decided).UTC()
			p.Decided = &t
		}
		out = append(out, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		p := &out[i]
		if p.Endorsers, err = endorsements(ctx, n, p.ID, p.Proposer); err != nil {
			return nil, err
		}
		p.Endorsers = append([]Endorsement{}, p.Endorsers...)
		p.Needed = max(0, s.Threshold-len(p.Endorsers))
	}
	return out, nil
}

func endorsements(ctx context.Context, n *node.Node, id int64, proposer string) ([]Endorsement, error) {
	rows, err := n.DB().QueryContext(ctx, `SELECT user, at FROM archive_endorsements WHERE proposal = ? AND user != ? ORDER BY at, user`, id, proposer)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Endorsement
	for rows.Next() {
		var e Endorsement
		var at int64
		if err := rows.Scan(&e.User, &at); err != nil {
			return nil, err
		}
		e.At = time.UnixMilli(at).UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

// Event is one step of the archive's history.
type Event struct {
	At     time.Time `json:"at"`
	Action string    `json:"action"` // proposed, endorsed, adopted, withdrawn, offered, received
	Who    string    `json:"who"`    // a member, or for offered/received a peer community
	Title  string    `json:"title"`
	Item   string    `json:"item"`
	Detail string    `json:"detail,omitempty"`
}

// History returns the archive's history, newest first: who proposed,
// endorsed, adopted or withdrew what, what was offered to which peer,
// and what arrived from other communities.
func History(ctx context.Context, n *node.Node, limit int) ([]Event, error) {
	self := n.ID()
	rows, err := n.DB().QueryContext(ctx, `
		SELECT proposed_at, 'proposed', proposer, title, item, 'version ' || version FROM archive_proposals
		UNION ALL SELECT e.at, 'endorsed', e.user, p.title, p.item, '' FROM archive_endorsements e
			JOIN archive_proposals p ON p.id = e.proposal WHERE e.user != p.proposer
		UNION ALL SELECT decided_at, state, decided_by, title, item, '' FROM archive_proposals WHERE state != 'open'
		UNION ALL SELECT o.at, 'offered', COALESCE(pe.name, hex(o.peer)),
			COALESCE((SELECT title FROM archive_manifests a WHERE a.item = o.item AND a.version = o.version LIMIT 1), ''),
			o.item, CASE WHEN o.error IS NULL THEN o.bundles || CASE o.bundles WHEN 1 THEN ' bundle, ' ELSE ' bundles, ' END || o.bytes || ' bytes'
				ELSE 'failed: ' || o.error END
			FROM archive_offers o LEFT JOIN peers pe ON pe.id = o.peer
		UNION ALL SELECT a.received_at, 'received', COALESCE(pe.name, hex(a.origin)), a.title, a.item,
			'version ' || a.version || CASE WHEN a.complete THEN '' ELSE ' (incomplete)' END
			FROM archive_manifests a LEFT JOIN peers pe ON pe.id = a.origin WHERE a.origin != ?
		ORDER BY 1 DESC LIMIT ?`, self[:], limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var at int64
		var item []byte
		if err := rows.Scan(&at, &e.Action, &e.Who, &e.Title, &item, &e.Detail); err != nil {
			return nil, err
		}
		e.At, e.Item = time.UnixMilli(at).UTC(), hex.EncodeToString(item)
		out = append(out, e)
	}
	return out, rows.Err()
}
