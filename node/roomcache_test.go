package node_test

import (
	"testing"
	"time"

	"ferry/node"
)

// TestUnreadSeesOtherProcesses checks that the rooms and read marks kept
// in memory follow writes made through another handle of the same store,
// as `ferry import` or `ferry msg` make while `ferry serve` runs.
func TestUnreadSeesOtherProcesses(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)}
	serve := newNode(t, "north", c)
	ctx := t.Context()
	if err := serve.AddUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := serve.CreateRoom(ctx, "general", "General", "", "user"); err != nil {
		t.Fatal(err)
	}
	unread := func(n *node.Node, user string) (node.Unread, int) {
		t.Helper()
		u, err := n.Unread(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := n.Rooms(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Name == "general" {
				return u, r.Unread
			}
		}
		t.Fatalf("no general room in %+v", rs)
		return u, 0
	}
	if u, k := unread(serve, "bob"); u.Rooms != 0 || k != 0 {
		t.Fatalf("bob's unread in an empty room: %+v, %d", u, k)
	}

	cli, err := node.Open(serve.Dir(), node.Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.CreateRoom(ctx, "garden", "Garden", "", "user"); err != nil {
		t.Fatal(err)
	}
	var last int64
	for _, body := range []string{"one", "two", "three"} {
		if last, _, err = cli.Post(ctx, node.Draft{From: "user", Room: "general", Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	if u, k := unread(serve, "bob"); u.Rooms != 1 || k != 3 {
		t.Errorf("bob's unread after posts by another process: %+v, %d", u, k)
	}
	if _, err := serve.Room(ctx, "garden"); err != nil {
		t.Errorf("a room made by another process: %v", err)
	}
	// The poster's own mark, written by the other process, counts too.
	if u, k := unread(serve, "user"); u.Rooms != 0 || k != 0 {
		t.Errorf("the poster's unread: %+v, %d", u, k)
	}
	if err := serve.MarkRead(ctx, "bob", node.RoomConv("general"), last); err != nil {
		t.Fatal(err)
	}
	if u, k := unread(serve, "bob"); u.Rooms != 0 || k != 0 {
		t.Errorf("bob's unread after reading: %+v, %d", u, k)
	}
	// A mark never moves back.
	if err := serve.MarkRead(ctx, "bob", node.RoomConv("general"), 1); err != nil {
		t.Fatal(err)
	}
	if u, _ := unread(serve, "bob"); u.Rooms != 0 {
		t.Errorf("bob's unread after an older mark: %+v", u)
	}
}
