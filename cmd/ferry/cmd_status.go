package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"ferry/node"
)

// statusReport is what ferry status reports; --json prints it as is.
type statusReport struct {
	Build buildInfo `json:"build"`
	// Serve is the running ferry serve of this data directory, if any.
	Serve *serveRunning `json:"serve,omitempty"`
	*node.StoreStatus
}

// alarmFlags set the disk alarm, for ferry status and ferry serve's health
// page alike.
type alarmFlags struct {
	percent float64
	mib     int64
}

func addAlarmFlags(fs *flag.FlagSet) *alarmFlags {
	a := &alarmFlags{}
	fs.Float64Var(&a.percent, "alarm-free-percent", node.DefaultAlarmPercent, "raise the disk alarm when less than this share (in %) of the data directory's file system is free")
	fs.Int64Var(&a.mib, "alarm-free-mib", node.DefaultAlarmBytes>>20, "raise the disk alarm when fewer than this many MiB are free")
	return a
}

func (a *alarmFlags) options() node.StatusOptions {
	return node.StatusOptions{AlarmPercent: a.percent, AlarmBytes: a.mib << 20}
}

func cmdStatus(ctx context.Context, e *env, args []string) error {
	fs := flags("status", e)
	data := dataFlag(fs)
	configFlag(fs)
	alarm := addAlarmFlags(fs)
	asJSON := fs.Bool("json", false, "print a JSON object")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	known, _ := serveFlags(&env{stderr: io.Discard})
	if err := applyConfig(fs, known); err != nil {
		return err
	}
	n, err := openNode(*data)
	if err != nil {
		return err
	}
	defer n.Close()
	ns, err := n.StoreStatus(ctx, alarm.options())
	if err != nil {
		return err
	}
	st := &statusReport{Build: currentBuild(), Serve: readServeRunning(n.Dir()), StoreStatus: ns}
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

// serveRunning is a running ferry serve, as it recorded itself in
// serveFile.
type serveRunning struct {
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	Uptime  string    `json:"uptime"`
}

// serveFile is where ferry serve notes its process and start time, for
// ferry status to tell the uptime. It is written once per start.
const serveFile = "serve.pid"

func writeServeRunning(dir string, started time.Time) error {
	return os.WriteFile(filepath.Join(dir, serveFile), fmt.Appendf(nil, "%d %d\n", os.Getpid(), started.Unix()), 0o600)
}

func removeServeRunning(dir string) {
	os.Remove(filepath.Join(dir, serveFile))
}

// readServeRunning reads serveFile, and returns nil when no serve runs:
// no file, or its process is gone or is not ferry (after a crash).
func readServeRunning(dir string) *serveRunning {
	b, err := os.ReadFile(filepath.Join(dir, serveFile))
	if err != nil {
		return nil
	}
	var pid int
	var at int64
	if _, err := fmt.Sscanf(string(b), "%d %d", &pid, &at); err != nil || pid <= 0 {
		return nil
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), "serve") {
		return nil
	}
	started := time.Unix(at, 0)
	return &serveRunning{PID: pid, Started: started, Uptime: node.DurationText(time.Since(started))}
}

func (st *statusReport) print(w io.Writer) {
	fmt.Fprintf(w, "%s\n", st.Build)
	fmt.Fprintf(w, "node     %s (%s)\n", st.Node, st.ID[:12])
	if st.Serve != nil {
		fmt.Fprintf(w, "serve    running (pid %d), up %s since %s\n", st.Serve.PID, st.Serve.Uptime, st.Serve.Started.UTC().Format("2006-01-02 15:04Z"))
	} else {
		fmt.Fprintln(w, "serve    not running")
	}
	fmt.Fprintf(w, "data     %s: %s (database %s, spool %s, files %s, archive %s)\n", st.Data,
		humanBytes(st.Disk.Total), humanBytes(st.Disk.Database), humanBytes(st.Disk.Spool), humanBytes(st.Disk.Files), humanBytes(st.Disk.Archive))
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
	for _, c := range st.Carriers {
		t := c.Last
		fmt.Fprintf(w, "carrier  %-6s last handoff %s, %d bundles in all\n", c.Carrier, agoText(&t), c.Bundles)
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
