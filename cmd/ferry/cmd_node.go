package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"ferry/node"
)

func cmdInit(ctx context.Context, e *env, args []string) error {
	fs := flags("init", e)
	data := dataFlag(fs)
	name := fs.String("name", "", "the community's node name: lowercase letters, digits, dashes")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *name == "" {
		return usageError("init: --name is required")
	}
	n, err := node.Init(*data, *name, node.Options{})
	if err != nil {
		return err
	}
	defer n.Close()
	fmt.Fprintf(e.stdout, "initialized node %s (%s) in %s\n", n.Name(), n.ID().Short(), *data)
	return nil
}

func cmdCard(ctx context.Context, e *env, args []string) error {
	fs := flags("card", e)
	data := dataFlag(fs)
	loc := fs.String("loc", "", "coarse location, LAT,LON in degrees")
	var addrs multiFlag
	fs.Var(&addrs, "addr", "an address where peers reach this node, HOST:PORT (repeatable)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var l *node.Location
	if *loc != "" {
		la, lo, ok := strings.Cut(*loc, ",")
		lat, err1 := strconv.ParseFloat(la, 64)
		lon, err2 := strconv.ParseFloat(lo, 64)
		if !ok || err1 != nil || err2 != nil {
			return usageError("card: --loc wants LAT,LON, e.g. 46.20,6.15")
		}
		l = &node.Location{Lat: lat, Lon: lon}
	}
	n, err := openNode(*data)
	if err != nil {
		return err
	}
	defer n.Close()
	card, err := n.Card(l, addrs)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, card)
	return nil
}

func cmdPeer(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageError("peer: want 'add', 'approve' or 'list'")
	}
	fs := flags("peer "+args[0], e)
	data := dataFlag(fs)
	switch args[0] {
	case "add":
		alias := fs.String("as", "", "name the peer this instead of the name on its card")
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) == 0 {
			return usageError("peer add: want a card (the text, or - to read it from standard input)")
		}
		card := strings.Join(pos, " ")
		if card == "-" {
			b, err := io.ReadAll(io.LimitReader(e.stdin, 8192))
			if err != nil {
				return err
			}
			card = string(b)
		}
		n, err := openNode(*data)
		if err != nil {
			return err
		}
		defer n.Close()
		p, err := n.AddPeer(ctx, card, *alias)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "added peer %s (%s)\n", p.Name, p.ID.Short())
		return nil
	case "approve":
		alias := fs.String("as", "", "name the peer this instead of the name on its card")
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		return peerApprove(ctx, e, *data, *alias, pos)
	case "list":
		if _, err := parse(fs, args[1:]); err != nil {
			return err
		}
		n, err := openNode(*data)
		if err != nil {
			return err
		}
		defer n.Close()
		ps, err := n.Peers(ctx)
		if err != nil {
			return err
		}
		for _, p := range ps {
			fmt.Fprintf(e.stdout, "%-16s %s  added %s\n", p.Name, p.ID, p.AddedAt.UTC().Format("2006-01-02"))
		}
		return nil
	}
	return usageError("peer: unknown subcommand %q (want add, approve or list)", args[0])
}

func cmdUser(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageError("user: want 'add' or 'list'")
	}
	fs := flags("user "+args[0], e)
	data := dataFlag(fs)
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	n, err := openNode(*data)
	if err != nil {
		return err
	}
	defer n.Close()
	switch args[0] {
	case "add":
		if len(pos) != 1 {
			return usageError("user add: want one NAME")
		}
		if err := n.AddUser(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "added user %s@%s\n", pos[0], n.Name())
		return nil
	case "list":
		us, err := n.Users(ctx)
		if err != nil {
			return err
		}
		for _, u := range us {
			fmt.Fprintf(e.stdout, "%s@%s\n", u, n.Name())
		}
		return nil
	}
	return usageError("user: unknown subcommand %q (want add or list)", args[0])
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
