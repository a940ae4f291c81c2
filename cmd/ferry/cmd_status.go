package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"ferry/bundle"
	"ferry/node"
)

// The disk alarm goes off when the data directory's file system has less
// than alarmFraction of its size or less than alarmBytes free.
const (
	alarmFraction = 0.10
	alarmBytes    = 1 << 30
)

// statusReport is what ferry status reports; --json prints it as is.
type statusReport struct {
	Build buildInfo   `json:"build"`
	Node  string      `json:"node"`
	ID    string      `json:"id"`
	Data  string      `json:"data"`
	Disk  diskStatus  `json:"disk"`
	Queue queueStatus `json:"queue"`
	Peers []peerLine  `json:"peers"`
}

type diskStatus struct {
	Database int64 `json:"database_bytes"` // ferry.db with its WAL
	Spool    int64 `json:"spool_bytes"`    // bundles held, partial transfers
	Files    int64 `json:"files_bytes"`    // file bodies
	Total    int64 `json:"total_bytes"`    // the whole data directory
	// The data directory's file system.
	FSSize int64 `json:"fs_size_bytes"`
	FSFree int64 `json:"fs_free_bytes"` // available to the node's user
	// Alarm explains why free space is too low; empty when it is not.
	Alarm string `json:"alarm,omitempty"`
}

type queueStatus struct {
	MessagesQueued int            `json:"messages_queued"` // not yet sealed into a bundle
	Bundles        int            `json:"bundles_held"`    // held for carrying
	BundleBytes    int64          `json:"bundles_held_bytes"`
	ByDestination  []destinationQ `json:"by_destination"`
}

type destinationQ struct {
	Dest    string `json:"dest"` // a peer's name, a node ID, "group:<id>" or "everyone"
	Bundles int    `json:"bundles"`
	Bytes   int64  `json:"bytes"`
}

type peerLine struct {
	Name    string     `json:"name"`
	ID      string     `json:"id"`
	LastOut *time.Time `json:"last_out,omitempty"`
	Carrier string     `json:"carrier,omitempty"`
	LastIn  *time.Time `json:"last_in,omitempty"`
	Waiting int        `json:"messages_waiting"`
}

func cmdStatus(ctx context.Context, e *env, args []string) error {
	fs := flags("status", e)
	data := dataFlag(fs)
	asJSON := fs.Bool("json", false, "print a JSON object")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	n, err := openNode(*data)
	if err != nil {
		return err
	}
	defer n.Close()
	st, err := nodeStatus(ctx, n)
	if err != nil {
		return err
	}
	if *asJSON {
		if err := printJSON(e.stdout, st); err != nil {
			return err
		}
	} else {
		st.print(e.stdout)
	}
	if st.Disk.Alarm != "" {
		// Exit status 1 lets a cron job or a monitor notice.
		return &exitError{code: 1, err: errQuiet}
	}
	return nil
}

func nodeStatus(ctx context.Context, n *node.Node) (*statusReport, error) {
	st := &statusReport{Build: currentBuild(), Node: n.Name(), ID: n.ID().String(), Data: n.Dir()}
	if abs, err := filepath.Abs(n.Dir()); err == nil {
		st.Data = abs
	}
	if err := st.Disk.measure(n.Dir()); err != nil {
		return nil, err
	}
	peers, err := n.PeerStatuses(ctx)
	if err != nil {
		return nil, fmt.Errorf("status: peers: %w", err)
	}
	names := map[bundle.NodeID]string{}
	for _, p := range peers {
		names[p.ID] = p.Name
		pl := peerLine{Name: p.Name, ID: p.ID.String(), Carrier: p.Carrier, Waiting: p.Waiting}
		if !p.LastOut.IsZero() {
			pl.LastOut = &p.LastOut
		}
		if !p.LastIn.IsZero() {
			pl.LastIn = &p.LastIn
		}
		st.Peers = append(st.Peers, pl)
	}
	if err := st.Queue.count(ctx, n.DB(), n.Now(), names); err != nil {
		return nil, fmt.Errorf("status: queues: %w", err)
	}
	return st, nil
}

// measure sums the data directory's parts and reads its file system's
// free space.
func (d *diskStatus) measure(dir string) error {
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
		case strings.HasPrefix(top, "ferry.db"):
			d.Database += size
		case top == "spool":
			d.Spool += size
		case top == "files":
			d.Files += size
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(dir, &sfs); err != nil {
		return fmt.Errorf("status: free space of %s: %w", dir, err)
	}
	d.FSSize = int64(sfs.Blocks) * int64(sfs.Bsize)
	d.FSFree = int64(sfs.Bavail) * int64(sfs.Bsize)
	d.Alarm = diskAlarm(d.FSFree, d.FSSize)
	return nil
}

// diskAlarm says why free space is too low, or returns "".
func diskAlarm(free, size int64) string {
	if size <= 0 {
		return ""
	}
	pct := 100 * float64(free) / float64(size)
	if float64(free) >= alarmFraction*float64(size) && free >= alarmBytes {
		return ""
	}
	return fmt.Sprintf("only %s (%.1f %%) free on the data directory's file system: below %d %% or %s. "+
		"Free space (old backups, logs, files) or move the data to a larger card before the node cannot store what it receives",
		humanBytes(free), pct, int(alarmFraction*100), humanBytes(alarmBytes))
}

// count reads the queues with read-only queries: ferry status must not
// seal messages or expire bundles as ferry export does.
func (q *queueStatus) count(ctx context.Context, db *sql.DB, now time.Time, names map[bundle.NodeID]string) error {
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM messages WHERE state = 'queued' AND bundle IS NULL`).Scan(&q.MessagesQueued); err != nil {
		return err
	}
	rows, err := db.QueryContext(ctx, `SELECT dest_type, dest, COUNT(*), COALESCE(SUM(size), 0) FROM bundles
		WHERE state IN ('outbound', 'carry') AND (expires = 0 OR expires > ?)
		GROUP BY dest_type, dest ORDER BY COUNT(*) DESC`, now.Unix())
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var typ bundle.DestType
		var dest []byte
		var d destinationQ
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

func (st *statusReport) print(w io.Writer) {
	fmt.Fprintf(w, "%s\n", st.Build)
	fmt.Fprintf(w, "node     %s (%s)\n", st.Node, st.ID[:12])
	fmt.Fprintf(w, "data     %s: %s (database %s, spool %s, files %s)\n", st.Data,
		humanBytes(st.Disk.Total), humanBytes(st.Disk.Database), humanBytes(st.Disk.Spool), humanBytes(st.Disk.Files))
	pct := 0.0
	if st.Disk.FSSize > 0 {
		pct = 100 * float64(st.Disk.FSFree) / float64(st.Disk.FSSize)
	}
	fmt.Fprintf(w, "disk     %s free of %s (%.0f %%)\n", humanBytes(st.Disk.FSFree), humanBytes(st.Disk.FSSize), pct)
	if st.Disk.Alarm != "" {
		fmt.Fprintf(w, "ALARM    disk nearly full: %s.\n", st.Disk.Alarm)
	}
	fmt.Fprintf(w, "queue    %d messages waiting to be sealed; %d bundles (%s) held for carrying\n",
		st.Queue.MessagesQueued, st.Queue.Bundles, humanBytes(st.Queue.BundleBytes))
	for _, d := range st.Queue.ByDestination {
		fmt.Fprintf(w, "           for %-20s %5d bundles %10s\n", d.Dest, d.Bundles, humanBytes(d.Bytes))
	}
	if len(st.Peers) == 0 {
		fmt.Fprintln(w, "peers    none (add one with ferry peer add CARD)")
		return
	}
	fmt.Fprintln(w, "peers")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tID\tLAST SENT\tBY\tLAST RECEIVED\tWAITING")
	for _, p := range st.Peers {
		carrier := p.Carrier
		if carrier == "" {
			carrier = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%d\n", p.Name, p.ID[:12], agoText(p.LastOut), carrier, agoText(p.LastIn), p.Waiting)
	}
	tw.Flush()
}

// agoText formats a contact time: "never", or the UTC time and how long ago.
func agoText(t *time.Time) string {
	if t == nil {
		return "never"
	}
	d := time.Since(*t)
	var rel string
	switch {
	case d < time.Minute:
		rel = "just now"
	case d < time.Hour:
		rel = fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		rel = fmt.Sprintf("%d h ago", int(d.Hours()))
	default:
		rel = fmt.Sprintf("%d days ago", int(d.Hours()/24))
	}
	return t.UTC().Format("2006-01-02 15:04Z") + " (" + rel + ")"
}
