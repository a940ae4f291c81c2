package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"ferry/bundle"
	"ferry/carriers"
	"ferry/node"
)

func cmdSync(ctx context.Context, e *env, args []string) error {
	fs := flags("sync", e)
	data := dataFlag(fs)
	asJSON := fs.Bool("json", false, "print the session report as JSON")
	timeout := fs.Duration("timeout", time.Hour, "give up after this long")
	idle := fs.Duration("idle", carriers.DefaultIdle, "give up when the peer sends nothing for this long")
	quota := fs.Int64("quota", 0, "take in at most this many MiB of bundles (0: no bound)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("sync: want the peer's address (HOST:PORT) or name")
	}
	n, err := openNode(*data)
	if err != nil {
		return err
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	addrs, peer, err := syncTarget(ctx, n, pos[0])
	if err != nil {
		return err
	}
	tcp, err := carriers.NewTCP(n)
	if err != nil {
		return err
	}
	var l carriers.Link
	for _, a := range addrs {
		if l, err = tcp.Dial(ctx, a, peer); err == nil {
			break
		}
	}
	if err != nil {
		return err
	}
	bar := newProgressBar(e.stderr)
	rep, err := carriers.Sync(ctx, n, l, carriers.Options{
		Idle:       *idle,
		MaxReceive: *quota << 20,
		Peer:       peer,
		Progress: func(p carriers.Progress) {
			bar.update("sync", p.Sent+p.Received, p.SendTotal+p.ReceiveTotal)
		},
	})
	bar.done()
	if *asJSON && rep != nil {
		if jerr := printJSON(e.stdout, syncJSON{Report: rep, Error: errString(err)}); jerr != nil {
			return jerr
		}
	} else if rep != nil && rep.Reconcile.Mode != "" {
		printSyncReport(e, rep)
	}
	return err
}

// syncJSON is what 'ferry sync --json' prints: the report, and the error
// that ended the session early, if any.
type syncJSON struct {
	*carriers.Report
	Error string `json:"error,omitempty"`
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// syncTarget resolves ADDR|PEER: a peer's name gives the addresses on
// its card and the key to expect there; HOST:PORT (or HOST) is dialed as
// is, and the session decides whether the node there is trusted.
func syncTarget(ctx context.Context, n *node.Node, arg string) ([]string, bundle.NodeID, error) {
	if node.ValidName(arg) && !strings.Contains(arg, ".") {
		if p, err := n.Peer(ctx, arg); err == nil {
			c, err := node.ParseCard(p.Card)
			if err != nil {
				return nil, bundle.NodeID{}, err
			}
			if len(c.Addrs) == 0 {
				return nil, bundle.NodeID{}, fmt.Errorf("peer %s: its card gives no address; give HOST:PORT", p.Name)
			}
			return c.Addrs, p.ID, nil
		} else if !errors.Is(err, node.ErrUnknownPeer) {
			return nil, bundle.NodeID{}, err
		}
	}
	return []string{arg}, bundle.NodeID{}, nil
}

func printSyncReport(e *env, r *carriers.Report) {
	w := e.stdout
	fmt.Fprintf(w, "peer: %s (%s) over %s %s, %s\n", r.PeerName, r.Peer.Short(), r.Medium, r.Remote, r.Finished.Sub(r.Started).Round(time.Millisecond))
	rc := r.Reconcile
	if r.InSync {
		fmt.Fprintln(w, "in sync: nothing to move")
		return
	}
	fmt.Fprintf(w, "reconcile: %s, %s, %s\n", rc.Mode, humanBytes(rc.Sent+rc.Received), plural(rc.RoundTrips, "round trip"))
	fmt.Fprintf(w, "in:   %s (%s): %d applied (%s, %s), %d carried for others, %d already here\n",
		plural(r.Received.Bundles, "bundle"), humanBytes(r.Received.Bytes), r.Applied, plural(r.Messages, "message"), plural(r.Receipts, "receipt"), r.Stored, r.Duplicates)
	fmt.Fprintf(w, "out:  %s (%s)\n", plural(r.Sent.Bundles, "bundle"), humanBytes(r.Sent.Bytes))
	if n := r.Received.Resumed + r.Sent.Resumed; n > 0 {
		fmt.Fprintf(w, "resumed: %s cut off earlier, %s not sent again\n", plural(n, "transfer"), humanBytes(r.Received.ResumedBytes+r.Sent.ResumedBytes))
	}
	if r.Known > 0 {
		fmt.Fprintf(w, "known: %s the peer told of, not needed here\n", plural(r.Known, "bundle"))
	}
	if r.Settled > 0 {
		fmt.Fprintf(w, "settled: %s dropped here, their destination has them\n", plural(r.Settled, "bundle"))
	}
	if r.Left > 0 {
		fmt.Fprintf(w, "left: %s (%s) over quota or busy: they wait for the next contact\n", plural(r.Left, "bundle"), humanBytes(r.LeftBytes))
	}
}

// plural returns "1 bundle", "2 bundles".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// carrierFlags are the live-link flags of ferry serve.
type carrierFlags struct {
	listen, every, beaconListen, beaconTo string
	discover                              bool
	beaconEvery                           time.Duration
	quota                                 int64
}

func addCarrierFlags(fs *flag.FlagSet) *carrierFlags {
	c := &carrierFlags{}
	fs.StringVar(&c.listen, "sync-listen", fmt.Sprintf(":%d", carriers.DefaultPort), "the address peers sync with this node on (TLS), or 'off'")
	fs.StringVar(&c.every, "sync-every", "every 6h", "when to sync with peers whose cards give addresses: 'every 6h', 'daily 03:00'")
	fs.BoolVar(&c.discover, "discover", true, "find peers on the LAN by UDP beacons, and sync with them")
	fs.StringVar(&c.beaconListen, "beacon-listen", fmt.Sprintf(":%d", carriers.DefaultBeaconPort), "the UDP address to hear beacons on")
	fs.StringVar(&c.beaconTo, "beacon-to", fmt.Sprintf("255.255.255.255:%d", carriers.DefaultBeaconPort), "where to send beacons, comma-separated")
	fs.DurationVar(&c.beaconEvery, "beacon-every", 30*time.Second, "the time between beacons")
	fs.Int64Var(&c.quota, "sync-quota", 1024, "MiB of bundles to take in from a peer in one session")
	return c
}

// liveLinks is what ferry serve runs for live links: the TCP listener,
// the scheduler, LAN discovery, and their per-peer statistics.
type liveLinks struct {
	Stats     *carriers.Stats
	server    *carriers.TCPServer
	scheduler *carriers.Scheduler
	discovery *carriers.Discovery
}

// startLiveLinks starts the live links of ferry serve as c sets them.
func startLiveLinks(ctx context.Context, n *node.Node, c *carrierFlags, e *env, log *slog.Logger) (*liveLinks, error) {
	ll := &liveLinks{Stats: &carriers.Stats{}}
	if c.listen == "off" {
		return ll, nil
	}
	sched, err := carriers.ParseSchedule(c.every)
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	session := carriers.Options{Logger: log, Stats: ll.Stats, MaxReceive: c.quota << 20}
	ll.server = carriers.NewTCPServer(n, c.listen)
	ll.server.Session, ll.server.Logger = session, log
	if err := ll.server.Open(ctx); err != nil {
		return nil, err
	}
	fmt.Fprintf(e.stderr, "ferry: syncing with peers on %s\n", ll.server.ListenAddr())
	tcp, err := carriers.NewTCP(n)
	if err != nil {
		ll.Close()
		return nil, err
	}
	ll.scheduler = carriers.NewScheduler(n, tcp)
	ll.scheduler.Session, ll.scheduler.Logger = session, log
	// A peer found on the LAN is synced with at most every four beacons.
	ll.scheduler.NudgeGap = 4 * c.beaconEvery
	peers, err := n.Peers(ctx)
	if err != nil {
		ll.Close()
		return nil, err
	}
	ll.scheduler.Set(carriers.TargetsFromCards(peers, sched))
	ll.scheduler.Open(ctx)
	go ll.followPeers(ctx, n, sched, log)
	if c.discover {
		_, port, _ := net.SplitHostPort(ll.server.ListenAddr().String())
		var p int
		fmt.Sscan(port, &p)
		ll.discovery = carriers.NewDiscovery(n, p)
		ll.discovery.Listen, ll.discovery.Logger, ll.discovery.Interval = c.beaconListen, log, c.beaconEvery
		ll.discovery.Targets = strings.Split(c.beaconTo, ",")
		ll.discovery.Found = ll.scheduler.SyncNow
		if err := ll.discovery.Open(ctx); err != nil {
			log.Warn("LAN discovery is off", "err", err)
			ll.discovery = nil
		}
	}
	return ll, nil
}

// peerRefresh is how often serve looks for peers added or changed since it
// started (by the web inbox or 'ferry peer add'), to schedule them.
const peerRefresh = 30 * time.Second

// followPeers keeps the scheduler's targets in step with the node's peers
// until ctx is done. Set keeps the next time of a target that stays.
func (ll *liveLinks) followPeers(ctx context.Context, n *node.Node, sched carriers.Schedule, log *slog.Logger) {
	t := time.NewTicker(peerRefresh)
	defer t.Stop()
	known := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		peers, err := n.Peers(ctx)
		if err != nil {
			log.Warn("reading peers", "err", err)
			continue
		}
		var cards strings.Builder
		for _, p := range peers {
			cards.WriteString(p.Card)
		}
		if cards.String() != known {
			known = cards.String()
			ll.scheduler.Set(carriers.TargetsFromCards(peers, sched))
		}
	}
}

// Close stops the live links.
func (ll *liveLinks) Close() error {
	var errs []error
	if ll.discovery != nil {
		errs = append(errs, ll.discovery.Close())
	}
	if ll.scheduler != nil {
		errs = append(errs, ll.scheduler.Close())
	}
	if ll.server != nil {
		errs = append(errs, ll.server.Close())
	}
	return errors.Join(errs...)
}
