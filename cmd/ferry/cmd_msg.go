package main

import (
	"context"
	"fmt"
	"strings"

	"ferry/node"
)

func cmdSend(ctx context.Context, e *env, args []string) error {
	fs := flags("send", e)
	data := dataFlag(fs)
	from := fs.String("from", "", "the sending user of this node")
	to := fs.String("to", "", "the recipient, USER@NODE")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *from == "" || *to == "" || len(pos) == 0 {
		return usageError("send: want --from USER --to USER@NODE TEXT")
	}
	addr, err := node.ParseAddress(*to)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	n, err := openNode(*data)
	if err != nil {
		return err
	}
	defer n.Close()
	id, err := n.Send(ctx, *from, addr, strings.Join(pos, " "))
	if err != nil {
		return err
	}
	if addr.Node == n.Name() {
		fmt.Fprintf(e.stdout, "delivered %s to %s\n", id, addr)
	} else {
		fmt.Fprintf(e.stdout, "queued %s for %s\n", id, addr)
	}
	return nil
}

func cmdInbox(ctx context.Context, e *env, args []string) error {
	fs := flags("inbox", e)
	data := dataFlag(fs)
	user := fs.String("user", "", "the user whose messages to show")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *user == "" {
		return usageError("inbox: --user is required")
	}
	n, err := openNode(*data)
	if err != nil {
		return err
	}
	defer n.Close()
	msgs, err := n.Inbox(ctx, *user)
	if err != nil {
		return err
	}
	if *asJSON {
		if msgs == nil {
			msgs = []node.InboxMessage{}
		}
		return printJSON(e.stdout, msgs)
	}
	for _, m := range msgs {
		peer, arrow := m.From, "<-"
		if m.Direction == "out" {
			peer, arrow = m.To, "->"
		}
		state := m.State
		if m.Carrier != "" && m.State == node.StateCarried {
			state += " by " + m.Carrier
		}
		if m.Reason != "" {
			state += ": " + m.Reason
		}
		fmt.Fprintf(e.stdout, "%s %s %-20s %s  [%s]\n", m.Sent.Local().Format("2006-01-02 15:04"), arrow, peer, m.Body, state)
	}
	return nil
}
