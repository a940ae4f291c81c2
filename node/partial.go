package node

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"ferry/bundle"
)

// PartialInfo describes a bundle received in part: a live link was cut
// while it moved.
type PartialInfo struct {
	ID      bundle.ID
	Source  bundle.NodeID
	Seq     uint64
	Size    int64     // bytes of the whole bundle
	Have    int64     // bytes received and durable
	Expires time.Time // the zero time means never
	Updated time.Time
}

// Partial is a bundle being received over a live link. Its bytes go to
// spool/tmp/<id>.partial, and how many of them are durable is recorded in
// the database, so that a transfer cut off continues, at the next contact
// and from any peer that holds the bundle, from the byte it stopped at.
// The bundle is verified whole before it is taken in ([Partial.Ingest]).
type Partial struct {
	n     *Node
	f     *os.File
	info  PartialInfo
	saved int64 // Have as recorded
}

// ErrPartialSize means bytes were written past the size a bundle's header
// gives it.
var ErrPartialSize = errors.New("node: more bytes than the bundle's header declares")

const partialExt = ".partial"

func (n *Node) partialPath(id bundle.ID) string {
	return filepath.Join(n.spool.dir, "tmp", id.String()+partialExt)
}

// PartialOf returns the partial transfer of origin's bundle seq, or nil
// if there is none.
func (n *Node) PartialOf(ctx context.Context, origin bundle.NodeID, seq uint64) (*PartialInfo, error) {
	row := n.db.QueryRowContext(ctx, `SELECT id, size, have, expires, updated_at FROM partials
		WHERE source = ? AND seq = ? ORDER BY updated_at DESC LIMIT 1`, origin[:], seq)
	p := PartialInfo{Source: origin, Seq: seq}
	var id []byte
	var expires, updated int64
	err := row.Scan(&id, &p.Size, &p.Have, &expires, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node: partial: %w", err)
	}
	p.ID = bundle.ID(id)
	if expires != 0 {
		p.Expires = time.Unix(expires, 0).UTC()
	}
	p.Updated = timeMilli(updated)
	return &p, nil
}

// BeginPartial starts receiving a bundle whose first bytes, up to and
// including the signature, are prefix. It verifies the prefix (format,
// limits and signature) and that size is the whole bundle's size, and
// replaces any earlier partial copy of the same bundle. Nothing is
// recorded until the first [Partial.Save].
func (n *Node) BeginPartial(ctx context.Context, prefix []byte, size int64) (*Partial, error) {
	rd, err := bundle.NewReader(bytes.NewReader(prefix), n.lim)
	if err != nil {
		return nil, err
	}
	h := rd.Header()
	if int(rd.PayloadOffset()) != len(prefix) {
		return nil, fmt.Errorf("node: partial: prefix of %d bytes, the header says %d", len(prefix), rd.PayloadOffset())
	}
	if want := rd.PayloadOffset() + int64(h.PayloadSize); want != size {
		return nil, fmt.Errorf("node: partial: bundle of %d bytes by its header, %d offered", want, size)
	}
	info := PartialInfo{ID: rd.ID(), Source: h.Source, Seq: h.Seq, Size: size, Expires: h.Expires, Updated: n.now()}
	f, err := os.OpenFile(n.partialPath(info.ID), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("node: partial: %w", err)
	}
	p := &Partial{n: n, f: f, info: info, saved: -1}
	if _, err := p.Write(prefix); err != nil {
		p.Discard(ctx)
		return nil, err
	}
	return p, nil
}

// ResumePartial reopens a partial transfer at its last durable byte.
func (n *Node) ResumePartial(ctx context.Context, id bundle.ID) (*Partial, error) {
	var info PartialInfo
	var src []byte
	var expires, updated int64
	err := n.db.QueryRowContext(ctx, `SELECT source, seq, size, have, expires, updated_at FROM partials WHERE id = ?`, id[:]).
		Scan(&src, &info.Seq, &info.Size, &info.Have, &expires, &updated)
	if err != nil {
		return nil, fmt.Errorf("node: resume partial %s: %w", id, err)
	}
	info.ID, info.Source, info.Updated = id, bundle.NodeID(src), timeMilli(updated)
	if expires != 0 {
		info.Expires = time.Unix(expires, 0).UTC()
	}
	f, err := os.OpenFile(n.partialPath(id), os.O_RDWR, 0o600)
	if err == nil {
		// Bytes past the recorded count may not have reached the disk.
		if err = f.Truncate(info.Have); err == nil {
			_, err = f.Seek(info.Have, io.SeekStart)
		}
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		n.dropPartial(ctx, id)
		return nil, fmt.Errorf("node: resume partial %s: %w", id, err)
	}
	return &Partial{n: n, f: f, info: info, saved: info.Have}, nil
}

// Info describes the transfer.
func (p *Partial) Info() PartialInfo { return p.info }

// Complete reports whether every byte of the bundle is there.
func (p *Partial) Complete() bool { return p.info.Have == p.info.Size }

// Write appends bytes of the bundle.
func (p *Partial) Write(b []byte) (int, error) {
	if int64(len(b)) > p.info.Size-p.info.Have {
		return 0, fmt.Errorf("%w (%d)", ErrPartialSize, p.info.Size)
	}
	k, err := p.f.Write(b)
	p.info.Have += int64(k)
	if err != nil {
		return k, fmt.Errorf("node: partial: %w", err)
	}
	return k, nil
}

// Save makes the bytes written so far durable and records their count.
func (p *Partial) Save(ctx context.Context) error {
	if p.saved == p.info.Have {
		return nil
	}
	if err := p.f.Sync(); err != nil {
		return fmt.Errorf("node: partial: sync: %w", err)
	}
	if p.saved < 0 {
		if err := syncDir(filepath.Dir(p.f.Name())); err != nil {
			return err
		}
	}
	var expires int64
	if !p.info.Expires.IsZero() {
		expires = p.info.Expires.Unix()
	}
	p.info.Updated = p.n.now()
	_, err := p.n.db.ExecContext(ctx, `INSERT INTO partials (id, source, seq, size, have, expires, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET have = excluded.have, updated_at = excluded.updated_at`,
		p.info.ID[:], p.info.Source[:], p.info.Seq, p.info.Size, p.info.Have, expires, p.info.Updated.UnixMilli())
	if err != nil {
		return fmt.Errorf("node: partial: %w", err)
	}
	p.saved = p.info.Have
	return nil
}

// Close saves the transfer and closes its file; it resumes later with
// [Node.ResumePartial].
func (p *Partial) Close(ctx context.Context) error {
	err := p.Save(ctx)
	if cerr := p.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("node: partial: %w", cerr)
	}
	return err
}

// Discard drops the transfer and its bytes.
func (p *Partial) Discard(ctx context.Context) error {
	p.f.Close()
	return p.n.dropPartial(ctx, p.info.ID)
}

func (n *Node) dropPartial(ctx context.Context, id bundle.ID) error {
	if err := os.Remove(n.partialPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("node: partial: %w", err)
	}
	if _, err := n.db.ExecContext(ctx, `DELETE FROM partials WHERE id = ?`, id[:]); err != nil {
		return fmt.Errorf("node: partial: %w", err)
	}
	return nil
}

// Ingest takes in the complete bundle with [Node.Ingest], which verifies
// it whole, and then drops the partial copy, whether the bundle was taken
// in or refused. Only an error of the store itself keeps it.
func (p *Partial) Ingest(ctx context.Context) (IngestResult, error) {
	if !p.Complete() {
		return IngestResult{}, fmt.Errorf("node: partial %s: %d of %d bytes", p.info.ID, p.info.Have, p.info.Size)
	}
	if _, err := p.f.Seek(0, io.SeekStart); err != nil {
		return IngestResult{}, fmt.Errorf("node: partial: %w", err)
	}
	res, err := p.n.Ingest(ctx, p.f)
	var refused *RefusedError
	if err == nil && res.ID != p.info.ID {
		err = &RefusedError{ID: &res.ID, Reason: fmt.Errorf("bundle %s is not the one begun, %s", res.ID, p.info.ID)}
	}
	if err == nil || errors.As(err, &refused) {
		if derr := p.Discard(ctx); derr != nil {
			p.n.log.Warn("dropping a received partial", "bundle", p.info.ID, "err", derr)
		}
		return res, err
	}
	p.Close(ctx)
	return res, err
}

// PrunePartials drops partial transfers of expired bundles and those
// untouched for longer than maxAge.
func (n *Node) PrunePartials(ctx context.Context, maxAge time.Duration) error {
	now := n.now()
	rows, err := n.db.QueryContext(ctx, `SELECT id FROM partials WHERE (expires != 0 AND expires <= ?) OR updated_at < ?`,
		now.Unix(), now.Add(-maxAge).UnixMilli())
	if err != nil {
		return fmt.Errorf("node: partials: %w", err)
	}
	var ids []bundle.ID
	for rows.Next() {
		var id []byte
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("node: partials: %w", err)
		}
		ids = append(ids, bundle.ID(id))
	}
	rows.Close()
	for _, id := range ids {
		if err := n.dropPartial(ctx, id); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Partials lists the partial transfers.
func (n *Node) Partials(ctx context.Context) ([]PartialInfo, error) {
	rows, err := n.db.QueryContext(ctx, `SELECT id, source, seq, size, have, expires, updated_at FROM partials ORDER BY updated_at`)
	if err != nil {
		return nil, fmt.Errorf("node: partials: %w", err)
	}
	defer rows.Close()
	var out []PartialInfo
	for rows.Next() {
		var p PartialInfo
		var id, src []byte
		var expires, updated int64
		if err := rows.Scan(&id, &src, &p.Seq, &p.Size, &p.Have, &expires, &updated); err != nil {
			return nil, fmt.Errorf("node: partials: %w", err)
		}
		p.ID, p.Source, p.Updated = bundle.ID(id), bundle.NodeID(src), timeMilli(updated)
		if expires != 0 {
			p.Expires = time.Unix(expires, 0).UTC()
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
