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

// TestRoomCacheConcurrent posts, reads and marks from several goroutines
// (run it with -race), then checks that the cache agrees with the store.
func TestRoomCacheConcurrent(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)}
	n := newNode(t, "north", c)
	ctx := t.Context()
	for _, u := range []string{"bob", "eve"} {
		if err := n.AddUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	rooms := []string{"a", "b", "c", "d"}
	for _, r := range rooms {
		if _, err := n.CreateRoom(ctx, r, r, "", "user"); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 8)
	for w := range 4 {
		go func() {
			for i := range 25 {
				room := rooms[(w+i)%len(rooms)]
				if _, _, err := n.Post(ctx, node.Draft{From: "user", Room: room, Body: "post"}); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		go func() {
			for i := range 50 {
				room := rooms[i%len(rooms)]
				es, err := n.RoomMessages(ctx, room, node.Page{Limit: 10})
				if err == nil && len(es) > 0 {
					err = n.MarkRead(ctx, "bob", node.RoomConv(room), es[len(es)-1].ID)
				}
				if err == nil {
					_, err = n.Unread(ctx, "bob")
				}
				if err == nil {
					_, err = n.Rooms(ctx, "eve")
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	rs, err := n.Rooms(ctx, "eve")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		es, err := n.RoomMessages(ctx, r.Name, node.Page{Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != 25 || r.LastID != es[len(es)-1].ID || r.Unread != node.MaxUnread+1 {
			t.Errorf("room %s: %d posts, list says newest %d (have %d), unread %d", r.Name, len(es), r.LastID, es[len(es)-1].ID, r.Unread)
		}
		page, err := n.RoomMessages(ctx, r.Name, node.Page{Limit: 10})
		if err != nil || len(page) != 10 || page[9].ID != es[len(es)-1].ID {
			t.Errorf("room %s: newest page %v, %v", r.Name, page, err)
		}
	}
	if u, err := n.Unread(ctx, "eve"); err != nil || u.Rooms != len(rooms) {
		t.Errorf("eve's unread: %+v %v", u, err)
	}
}
