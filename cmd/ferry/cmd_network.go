package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"ferry/node"
)

// announceFlags are serve's flags for node announcements (docs/network.md).
type announceFlags struct {
	every time.Duration
	ttl   time.Duration
}

func addAnnounceFlags(fs *flag.FlagSet) *announceFlags {
	f := &announceFlags{}
	fs.DurationVar(&f.every, "announce-every", node.DefaultAnnounceEvery, "how often to announce this node to the network (0: never)")
	fs.DurationVar(&f.ttl, "announce-ttl", node.DefaultAnnounceTTL, "how long an announcement travels before it expires")
	return f
}

// startAnnouncer announces the node now when its last announcement is
// stale, then checks every hour (or f.every, if shorter) in the
// background until ctx is done. It returns a function that waits for the
// background work to stop.
func startAnnouncer(ctx context.Context, n *node.Node, f *announceFlags, carriers []string, log *slog.Logger) func() {
	if f.every <= 0 {
		return func() {}
	}
	opts := node.AnnounceOptions{Carriers: carriers, TTL: f.ttl}
	announce := func() {
		if did, err := n.AnnounceIfStale(ctx, opts, f.every); err != nil {
			if ctx.Err() == nil {
				log.Warn("announcing this node", "err", err)
			}
		} else if did {
			log.Info("announced this node to the network", "carriers", strings.Join(carriers, ","))
		}
	}
	announce()
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(min(f.every, time.Hour))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				announce()
			}
		}
	}()
	return func() { <-done }
}

// servedCarriers names the carriers serve runs, for announcements.
func servedCarriers(tcp, usb, ble, lora bool) []string {
	var cs []string
	for _, c := range []struct {
		on   bool
		name string
	}{{ble, "ble"}, {lora, "lora"}, {tcp, "tcp"}, {usb, "usb"}} {
		if c.on {
			cs = append(cs, c.name)
		}
	}
	return cs
}

// networkEntry is one community in 'ferry network --json'.
type networkEntry struct {
	Name         string        `json:"name"`
	ID           string        `json:"id"`
	PeerName     string        `json:"peer_name,omitempty"`
	Trust        string        `json:"trust"`
	IntroducedBy []string      `json:"introduced_by,omitempty"`
	Location     *[2]float64   `json:"location,omitempty"`
	Carriers     []string      `json:"carriers"`
	Issued       time.Time     `json:"issued"`
	Expires      time.Time     `json:"expires"`
	Links        []networkLink `json:"links"`
	Queue        node.Queue    `json:"queue"`
	Card         string        `json:"card"`
}

type networkLink struct {
	To      string    `json:"to"`
	Last    time.Time `json:"last"`
	Carrier string    `json:"carrier"`
	Bytes   uint64    `json:"bytes"`
}

func cmdNetwork(ctx context.Context, e *env, args []string) error {
	sub := "list"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	fs := flags("network "+sub, e)
	data := dataFlag(fs)
	switch sub {
	case "list":
		asJSON := fs.Bool("json", false, "print JSON")
		n, _, err := parseAndOpen(fs, args, data)
		if err != nil {
			return err
		}
		defer n.Close()
		return listNetwork(ctx, e, n, *asJSON)
	case "announce":
		var carriers multiFlag
		fs.Var(&carriers, "carrier", "a carrier this node runs: usb, tcp, lora, ble (repeatable)")
		ttl := fs.Duration("ttl", node.DefaultAnnounceTTL, "how long the announcement travels")
		n, _, err := parseAndOpen(fs, args, data)
		if err != nil {
			return err
		}
		defer n.Close()
		id, err := n.Announce(ctx, node.AnnounceOptions{Carriers: carriers, TTL: *ttl})
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "announced %s in bundle %s\n", n.Name(), id)
		return nil
	case "locate":
		pos, err := parse(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageError("network locate: want LAT,LON (or 'none')")
		}
		var loc *node.Location
		if pos[0] != "none" {
			la, lo, ok := strings.Cut(pos[0], ",")
			lat, err1 := strconv.ParseFloat(la, 64)
			lon, err2 := strconv.ParseFloat(lo, 64)
			if !ok || err1 != nil || err2 != nil {
				return usageError("network locate: want LAT,LON in degrees, e.g. 46.2,6.1")
			}
			loc = &node.Location{Lat: lat, Lon: lon}
		}
		n, err := openNode(*data)
		if err != nil {
			return err
		}
		defer n.Close()
		if err := n.SetLocation(ctx, loc); err != nil {
			return err
		}
		if loc, err = n.Location(ctx); err != nil {
			return err
		}
		if loc == nil {
			fmt.Fprintln(e.stdout, "location cleared: announcements say nothing of where this node is")
		} else {
			fmt.Fprintf(e.stdout, "location set to %.1f,%.1f (a tenth of a degree: about 11 km)\n", loc.Lat, loc.Lon)
		}
		return nil
	}
	return usageError("network: unknown subcommand %q (want list, announce or locate)", sub)
}

// parseAndOpen parses a command's flags and opens its node.
func parseAndOpen(fs *flag.FlagSet, args []string, data *string) (*node.Node, []string, error) {
	pos, err := parse(fs, args)
	if err != nil {
		return nil, nil, err
	}
	n, err := openNode(*data)
	return n, pos, err
}

func listNetwork(ctx context.Context, e *env, n *node.Node, asJSON bool) error {
	dir, err := n.Directory(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		out := []networkEntry{}
		for _, d := range dir {
			ne := networkEntry{Name: d.Name, ID: d.ID.String(), PeerName: d.PeerName, Trust: string(d.Trust),
				IntroducedBy: d.IntroducedBy, Carriers: d.Carriers, Issued: d.Issued, Expires: d.Expires,
				Links: []networkLink{}, Queue: d.Queue, Card: d.Card}
			if d.Location != nil {
				ne.Location = &[2]float64{d.Location.Lat, d.Location.Lon}
			}
			for _, l := range d.Links {
				ne.Links = append(ne.Links, networkLink{To: l.ToName, Last: l.Last, Carrier: l.Carrier, Bytes: l.Bytes})
			}
			out = append(out, ne)
		}
		return printJSON(e.stdout, out)
	}
	if len(dir) == 0 {
		fmt.Fprintln(e.stdout, "the directory is empty: no announcement taken in yet (ferry network announce makes this node's)")
		return nil
	}
	for _, d := range dir {
		trust := string(d.Trust)
		if d.Trust == node.TrustIntroduced && len(d.IntroducedBy) > 0 {
			trust = "introduced by " + strings.Join(d.IntroducedBy, ", ") + " (not trusted: ferry peer approve " + d.Name + ")"
		}
		fmt.Fprintf(e.stdout, "%-16s %s  %s\n", d.DisplayName(), d.ID.Short(), trust)
		for _, l := range d.Links {
			fmt.Fprintf(e.stdout, "  ↔ %-14s %s by %s\n", l.ToName, l.Last.UTC().Format("2006-01-02 15:04"), l.Carrier)
		}
	}
	return nil
}

// peerApprove is 'ferry peer approve NAME': trust a community introduced
// by an announcement.
func peerApprove(ctx context.Context, e *env, data, alias string, pos []string) error {
	if len(pos) != 1 {
		return usageError("peer approve: want the name or ID of a community of 'ferry network'")
	}
	n, err := openNode(data)
	if err != nil {
		return err
	}
	defer n.Close()
	p, err := n.Approve(ctx, pos[0], alias)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "approved %s (%s): it is now a trusted peer\n", p.Name, p.ID.Short())
	return nil
}
