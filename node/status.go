package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"ferry/bundle"
)

// What ferry status and the health page report of a node's store: its
// disk use with an alarm before the card fills, its queues and its
// contacts. Reading it changes nothing (no sealing, no expiry).

// DefaultAlarmPercent and DefaultAlarmBytes: the disk alarm goes off when
// the data directory's file system has less than this share of its size,
// or fewer than this many bytes, free.
const (
	DefaultAlarmPercent = 10
	DefaultAlarmBytes   = 1 << 30
)

// StatusOptions sets the disk alarm's thresholds (zero: no alarm of that
// kind) and how the free space is read.
type StatusOptions struct {
	AlarmPercent float64
	AlarmBytes   int64
	// Statfs returns the size and the free space (available to this
	// process's user) of the file system holding dir; nil reads it with
	// statfs(2).
	Statfs func(dir string) (size, free int64, err error)
	// SkipWalk leaves the per-part sizes (Database, Spool, Files, Archive,
	// Total) zero: walking an archive of many chunks is slow on an SD
	// card, and a health check polled every minute needs only free space.
	SkipWalk bool
}

// StoreStatus is a node's store, queues and contacts.
type StoreStatus struct {
	Node     string           `json:"node"`
	ID       string           `json:"id"`
	Data     string           `json:"data"`
	Disk     DiskStatus       `json:"disk"`
	Queue    QueueStatus      `json:"queue"`
	Peers    []PeerLine       `json:"peers"`
	Carriers []CarrierContact `json:"carriers"`
}

// DiskStatus is the store's size by part and its file system's space.
type DiskStatus struct {
	Database int64 `json:"database_bytes"` // ferry.db with its WAL
	Spool    int64 `json:"spool_bytes"`    // bundles held, partial transfers
	Files    int64 `json:"files_bytes"`    // file bodies
	Archive  int64 `json:"archive_bytes"`  // archive chunks
	Total    int64 `json:"total_bytes"`    // the whole data directory
	FSSize   int64 `json:"fs_size_bytes"`
	FSFree   int64 `json:"fs_free_bytes"` // available to the node's user
	// The thresholds in force.
	AlarmPercent float64 `json:"alarm_free_percent"`
	AlarmBytes   int64   `json:"alarm_free_bytes"`
	// Alarm explains why free space is too low; empty when it is not.
	Alarm string `json:"alarm,omitempty"`
}

// QueueStatus is what waits to be carried.
type QueueStatus struct {
	MessagesQueued int                `json:"messages_queued"` // not yet sealed into a bundle
	Bundles        int                `json:"bundles_held"`    // held for carrying
	BundleBytes    int64              `json:"bundles_held_bytes"`
	ByDestination  []DestinationQueue `json:"by_destination"`
}

// DestinationQueue is the bundles held for one destination.
type DestinationQueue struct {
	Dest    string `json:"dest"` // a peer's name, "node:<id>", "group:<id>" or "everyone"
	Bundles int    `json:"bundles"`
	Bytes   int64  `json:"bytes"`
}

// PeerLine is a peer's contacts.
type PeerLine struct {
	Name    string     `json:"name"`
	ID      string     `json:"id"`
	LastOut *time.Time `json:"last_out,omitempty"`
	Carrier string     `json:"carrier,omitempty"`
	LastIn  *time.Time `json:"last_in,omitempty"`
	Waiting int        `json:"messages_waiting"`
}

// CarrierContact is the last handoff of a bundle to any peer by one
// carrier (file, usb, tcp, ble, lora...).
type CarrierContact struct {
	Carrier string    `json:"carrier"`
	Last    time.Time `json:"last"`
	Bundles int       `json:"bundles"` // handed off by it, ever
}

// StoreStatus reads the node's store, queues and contacts.
func (n *Node) StoreStatus(ctx context.Context, opts StatusOptions) (*StoreStatus, error) {
	st := &StoreStatus{Node: n.Name(), ID: n.ID().String(), Data: n.Dir()}
	if abs, err := filepath.Abs(n.Dir()); err == nil {
		st.Data = abs
	}
	if !opts.SkipWalk {
		if err := st.Disk.walk(n.Dir()); err != nil {
			return nil, err
		}
	}
	statfs := opts.Statfs
	if statfs == nil {
		statfs = Statfs
	}
	var err error
	if st.Disk.FSSize, st.Disk.FSFree, err = statfs(n.Dir()); err != nil {
		return nil, fmt.Errorf("status: free space of %s: %w", n.Dir(), err)
	}
	st.Disk.AlarmPercent, st.Disk.AlarmBytes = opts.AlarmPercent, opts.AlarmBytes
	st.Disk.Alarm = DiskAlarm(st.Disk.FSFree, st.Disk.FSSize, opts.AlarmPercent, opts.AlarmBytes)

	peers, err := n.PeerStatuses(ctx)
	if err != nil {
		return nil, fmt.Errorf("status: peers: %w", err)
	}
	names := map[bundle.NodeID]string{}
	for _, p := range peers {
		names[p.ID] = p.Name
		pl := PeerLine{Name: p.Name, ID: p.ID.String(), Carrier: p.Carrier, Waiting: p.Waiting}
		if !p.LastOut.IsZero() {
			pl.LastOut = &p.LastOut
		}
		if !p.LastIn.IsZero() {
			pl.LastIn = &p.LastIn
		}
		st.Peers = append(st.Peers, pl)
	}
	if err := n.countQueues(ctx, &st.Queue, names); err != nil {
		return nil, fmt.Errorf("status: queues: %w", err)
	}
	rows, err := n.db.QueryContext(ctx, `SELECT carrier, MAX(at), COUNT(*) FROM handoffs GROUP BY carrier ORDER BY MAX(at) DESC`)
	if err != nil {
		return nil, fmt.Errorf("status: carriers: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c CarrierContact
		var at int64
		if err := rows.Scan(&c.Carrier, &at, &c.Bundles); err != nil {
			return nil, err
		}
		c.Last = timeMilli(at)
		st.Carriers = append(st.Carriers, c)
	}
	return st, rows.Err()
}

// Statfs reads the size and the free space (for unprivileged users) of
// the file system holding dir.
func Statfs(dir string) (size, free int64, err error) {
	var s syscall.Statfs_t
	if err := syscall.Statfs(dir, &s); err != nil {
		return 0, 0, err
	}
	return int64(s.Blocks) * int64(s.Bsize), int64(s.Bavail) * int64(s.Bsize), nil
}

// walk sums the data directory's parts.
func (d *DiskStatus) walk(dir string) error {
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walk
			}
			return err
		}
		if de.IsDir() {
			return nil
		}
		info, err := de.Info()
		if err != nil {
			return nil
		}
		size := info.Size()
		d.Total += size
		rel, _ := filepath.Rel(dir, p)
		top, _, _ := strings.Cut(filepath.ToSlash(rel), "/")
		switch {
		case strings.HasPrefix(top, dbFile):
			d.Database += size
		case top == "spool":
			d.Spool += size
		case top == filesDir:
			d.Files += size
		case top == "archive":
			d.Archive += size
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	return nil
}

// DiskAlarm says why free space is too low (below percent of size, or
// below bytes), or returns "".
func DiskAlarm(free, size int64, percent float64, bytes int64) string {
	if size <= 0 {
		return ""
	}
	pct := 100 * float64(free) / float64(size)
	if pct >= percent && free >= bytes {
		return ""
	}
	return fmt.Sprintf("only %s (%.1f %%) free on the data directory's file system: below %g %% or %s. "+
		"Free space (old backups, logs, files) or move the data to a larger card before the node cannot store what it receives",
		HumanBytes(free), pct, percent, HumanBytes(bytes))
}

// HumanBytes writes a size for people: 1.5 GiB, 320.0 KiB, 12 B.
func HumanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// countQueues reads the queues with read-only queries: a status must not
// seal messages or expire bundles as an export does.
func (n *Node) countQueues(ctx context.Context, q *QueueStatus, names map[bundle.NodeID]string) error {
	if err := n.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM messages WHERE state = 'queued' AND bundle IS NULL`).Scan(&q.MessagesQueued); err != nil {
		return err
	}
	rows, err := n.db.QueryContext(ctx, `SELECT dest_type, dest, COUNT(*), COALESCE(SUM(size), 0) FROM bundles
		WHERE state IN ('outbound', 'carry') AND (expires = 0 OR expires > ?)
		GROUP BY dest_type, dest ORDER BY COUNT(*) DESC`, n.now().Unix())
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var typ bundle.DestType
		var dest []byte
		var d DestinationQueue
		if err := rows.Scan(&typ, &dest, &d.Bundles, &d.Bytes); err != nil {
			return err
		}
		d.Dest = destName(typ, dest, names)
		q.Bundles += d.Bundles
		q.BundleBytes += d.Bytes
		q.ByDestination = append(q.ByDestination, d)
	}
	return rows.Err()
}

func destName(typ bundle.DestType, dest []byte, names map[bundle.NodeID]string) string {
	switch typ {
	case bundle.DestEveryone:
		return "everyone"
	case bundle.DestGroup:
		return fmt.Sprintf("group:%x", dest[:min(6, len(dest))])
	}
	if len(dest) == len(bundle.NodeID{}) {
		if name, ok := names[bundle.NodeID(dest)]; ok {
			return name
		}
	}
	return fmt.Sprintf("node:%x", dest[:min(6, len(dest))])
}

// DurationText writes a duration as people read an uptime: "3 d 4 h",
// "2 h 5 min", "12 min", "40 s".
func DurationText(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d d %d h", int(d.Hours())/24, int(d.Hours())%24)
	case d >= time.Hour:
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	case d >= time.Minute:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	}
	return fmt.Sprintf("%d s", int(d.Seconds()))
}
