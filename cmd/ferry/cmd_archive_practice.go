package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"ferry/archive"
	"ferry/node"
	"ferry/web"
)

// itemFlagSet holds the flags that describe an item (add, propose).
type itemFlagSet struct {
	meta archive.Meta
	tags *string
	item *string
}

func itemFlags(fs *flag.FlagSet) *itemFlagSet {
	it := &itemFlagSet{}
	fs.StringVar(&it.meta.Title, "title", "", "the item's title (required for a new item)")
	fs.StringVar(&it.meta.Description, "description", "", "what the item is")
	it.tags = fs.String("tags", "", "comma-separated tags")
	fs.StringVar(&it.meta.Lang, "lang", "", "the item's language (e.g. en, fr)")
	fs.StringVar(&it.meta.Source, "source", "", "where the item comes from (URL)")
	it.item = fs.String("item", "", "a new version of this item (its ID)")
	return it
}

// resolve splits the tags and finds the item named by --item, if any.
func (it *itemFlagSet) resolve(ctx context.Context, n *node.Node) (*[16]byte, error) {
	for t := range strings.SplitSeq(*it.tags, ",") {
		if t = strings.TrimSpace(t); t != "" {
			it.meta.Tags = append(it.meta.Tags, t)
		}
	}
	if *it.item == "" {
		return nil, nil
	}
	id, err := archive.ResolveItem(ctx, n, *it.item)
	if err != nil {
		return nil, err
	}
	return &id, nil
}

// archivePropose runs "ferry archive propose --as USER PATH --title T".
func archivePropose(ctx context.Context, e *env, args []string) error {
	fs := flags("archive propose", e)
	data := dataFlag(fs)
	as := fs.String("as", "", "the member who proposes (a user of the node)")
	asJSON := fs.Bool("json", false, "print JSON")
	it := itemFlags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *as == "" || (it.meta.Title == "" && *it.item == "") {
		return usageError("archive propose: want --as USER PATH --title T (or --item ID for a new version)")
	}
	n, err := openNode(*data)
	if err != nil {
		return err
	}
	defer n.Close()
	by, err := web.ArchiveMember(ctx, n, *as)
	if err != nil {
		return err
	}
	item, err := it.resolve(ctx, n)
	if err != nil {
		return err
	}
	p, rep, err := archive.Propose(ctx, n, by, pos[0], item, it.meta)
	if err != nil {
		return err
	}
	for _, s := range rep.Skipped {
		fmt.Fprintf(e.stderr, "skipped %s: not a regular file\n", s)
	}
	if *asJSON {
		return printJSON(e.stdout, p)
	}
	fmt.Fprintf(e.stdout, "proposal %d: %q by %s, %d files, %d bytes; %d endorsements needed\n",
		p.ID, p.Meta.Title, p.Proposer, p.Files, p.Size, p.Needed)
	return nil
}

// archiveDecide runs "ferry archive endorse|adopt|withdraw --as USER ID".
func archiveDecide(ctx context.Context, e *env, verb string, args []string) error {
	fs := flags("archive "+verb, e)
	data := dataFlag(fs)
	as := fs.String("as", "", "the member who acts (a user of the node)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	var id int64
	if len(pos) == 1 {
		id, err = strconv.ParseInt(pos[0], 10, 64)
	}
	if len(pos) != 1 || err != nil || *as == "" {
		return usageError("archive %s: want --as USER PROPOSAL (its number)", verb)
	}
	n, err := openNode(*data)
	if err != nil {
		return err
	}
	defer n.Close()
	by, err := web.ArchiveMember(ctx, n, *as)
	if err != nil {
		return err
	}
	var p *archive.Proposal
	var a *archive.Adoption
	switch verb {
	case "endorse":
		p, a, err = archive.Endorse(ctx, n, by, id)
	case "adopt":
		a, err = archive.Adopt(ctx, n, by, id)
	case "withdraw":
		if err = archive.Withdraw(ctx, n, by, id); err == nil {
			p, err = archive.GetProposal(ctx, n, id)
		}
	}
	if err != nil {
		return err
	}
	if a != nil {
		p = a.Proposal
	}
	if *asJSON {
		if a != nil {
			return printJSON(e.stdout, a)
		}
		return printJSON(e.stdout, p)
	}
	fmt.Fprintf(e.stdout, "proposal %d: %q %s", p.ID, p.Meta.Title, p.State)
	if p.State == archive.StateOpen {
		fmt.Fprintf(e.stdout, ", %d endorsements, %d more needed", len(p.Endorsers), p.Needed)
	}
	fmt.Fprintln(e.stdout)
	if a != nil {
		for _, o := range a.Offers {
			if o.Error != "" {
				fmt.Fprintf(e.stdout, "offer to %s failed: %s\n", o.Peer, o.Error)
				continue
			}
			fmt.Fprintf(e.stdout, "offered to %s: %d bundles, %d bytes queued\n", o.Peer, o.Bundles, o.Bytes)
		}
	}
	return nil
}

// archiveProposals runs "ferry archive proposals [--state S]".
func archiveProposals(ctx context.Context, e *env, args []string) error {
	var state *string
	return listCommand(ctx, e, args, "archive proposals",
		func(fs *flag.FlagSet) {
			state = fs.String("state", "", "only proposals in this state: open, adopted or withdrawn")
		},
		func(ctx context.Context, n *node.Node) ([]archive.Proposal, error) {
			return archive.Proposals(ctx, n, *state)
		},
		func(p archive.Proposal) string {
			var who []string
			for _, en := range p.Endorsers {
				who = append(who, en.User)
			}
			return fmt.Sprintf("%d  %-9s %s  by %s  endorsed by [%s]  %d files, %d bytes",
				p.ID, p.State, p.Meta.Title, p.Proposer, strings.Join(who, ", "), p.Files, p.Size)
		})
}

// archiveHistory runs "ferry archive history".
func archiveHistory(ctx context.Context, e *env, args []string) error {
	var limit *int
	return listCommand(ctx, e, args, "archive history",
		func(fs *flag.FlagSet) { limit = fs.Int("n", 100, "how many events") },
		func(ctx context.Context, n *node.Node) ([]archive.Event, error) {
			return archive.History(ctx, n, *limit)
		},
		func(ev archive.Event) string {
			return fmt.Sprintf("%s  %-9s %-12s %s %s", ev.At.Local().Format(time.DateTime), ev.Action, ev.Who, ev.Title, ev.Detail)
		})
}

// listCommand runs a command that lists what fetch returns: its own
// flags, then --data and --json; one line per entry, or a JSON array
// ([] when there is nothing).
func listCommand[T any](ctx context.Context, e *env, args []string, name string,
	own func(*flag.FlagSet), fetch func(context.Context, *node.Node) ([]T, error), line func(T) string) error {
	fs := flags(name, e)
	data := dataFlag(fs)
	own(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	n, err := openNode(*data)
	if err != nil {
		return err
	}
	defer n.Close()
	list, err := fetch(ctx, n)
	if err != nil {
		return err
	}
	if *asJSON {
		if list == nil {
			list = []T{}
		}
		return printJSON(e.stdout, list)
	}
	for _, v := range list {
		fmt.Fprintln(e.stdout, line(v))
	}
	return nil
}

// archiveSettings runs "ferry archive settings [--threshold N] [--adopt W]".
func archiveSettings(ctx context.Context, e *env, args []string) error {
	fs := flags("archive settings", e)
	data := dataFlag(fs)
	threshold := fs.Int("threshold", -1, "endorsements a proposal needs, besides its proposer's")
	adopt := fs.String("adopt", "", "who adopts: admins, members, or auto (the endorsement reaching the threshold)")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	n, err := openNode(*data)
	if err != nil {
		return err
	}
	defer n.Close()
	s, err := archive.GetSettings(ctx, n)
	if err != nil {
		return err
	}
	if *threshold >= 0 || *adopt != "" {
		if *threshold >= 0 {
			s.Threshold = *threshold
		}
		if *adopt != "" {
			s.Adopt = *adopt
		}
		if err := archive.SetSettings(ctx, n, s); err != nil {
			return err
		}
	}
	if *asJSON {
		return printJSON(e.stdout, s)
	}
	fmt.Fprintf(e.stdout, "threshold %d endorsements; adopted by %s\n", s.Threshold, s.Adopt)
	return nil
}
