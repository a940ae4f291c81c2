package node_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"ferry/node"
)

// TestSharedRoom posts in a room shared by two communities, carries the
// posts both ways, and checks replies, deliveries, unread counts and that
// a room not shared refuses a peer's posts.
func TestSharedRoom(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)}
	north, river := newNode(t, "north", c), newNode(t, "river", c)
	link(t, north, river)
	ctx := t.Context()
	sharedRoom(t, north, river, "garden", "Garden <b>")
	if _, err := river.CreateRoom(ctx, "private", "", "", "user"); err != nil {
		t.Fatal(err)
	}

	first, _, err := north.Post(ctx, node.Draft{From: "user", Room: "garden", Body: "tomatoes are ripe"})
	if err != nil {
		t.Fatal(err)
	}
	// A room post to a room river has but does not share with north.
	if _, err := north.CreateRoom(ctx, "private", "", "", "user"); err != nil {
		t.Fatal(err)
	}
	if err := north.ShareRoom(ctx, "private", "river"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := north.Post(ctx, node.Draft{From: "user", Room: "private", Body: "let me in"}); err != nil {
		t.Fatal(err)
	}

	es, err := north.RoomMessages(ctx, "garden", node.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || len(es[0].Deliveries) != 1 || es[0].Deliveries[0].State != node.StateQueued || es[0].Deliveries[0].Node != "river" {
		t.Fatalf("north's garden before carrying: %+v", es)
	}
	carry(t, north, river)
	if es, _ := north.RoomMessages(ctx, "garden", node.Page{}); es[0].Deliveries[0].State != node.StateCarried ||
		es[0].Deliveries[0].Carrier != "file" || es[0].Deliveries[0].CarriedAt.IsZero() {
		t.Errorf("after export: %+v", es[0].Deliveries)
	}

	got, err := river.RoomMessages(ctx, "garden", node.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Body != "tomatoes are ripe" || got[0].From.String() != "user@north" {
		t.Fatalf("river's garden: %+v", got)
	}
	if p, _ := river.RoomMessages(ctx, "private", node.Page{}); len(p) != 0 {
		t.Errorf("a post to a room not shared with north shows at river: %+v", p)
	}
	rooms, err := river.Rooms(ctx, "user")
	if err != nil {
		t.Fatal(err)
	}
	if len(rooms) != 2 || rooms[0].Name != "garden" || rooms[0].Unread != 1 || rooms[1].Unread != 0 {
		t.Errorf("river's rooms: %+v", rooms)
	}
	if err := river.MarkRead(ctx, "user", node.RoomConv("garden"), got[0].ID); err != nil {
		t.Fatal(err)
	}
	if rooms, _ := river.Rooms(ctx, "user"); rooms[0].Unread != 0 {
		t.Errorf("after reading: %+v", rooms[0])
	}

	// River replies; north sees the reply quote its own post.
	if _, _, err := river.Post(ctx, node.Draft{From: "user", Room: "garden", ReplyTo: got[0].ID, Body: "bring a basket"}); err != nil {
		t.Fatal(err)
	}
	carry(t, river, north)
	es, err = north.RoomMessages(ctx, "garden", node.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[1].ReplyTo == nil || es[1].ReplyTo.ID != first || es[0].Deliveries[0].State != node.StateDelivered {
		t.Fatalf("north's garden after the reply: %+v", es)
	}
	p, _ := north.RoomMessages(ctx, "private", node.Page{})
	if len(p) != 1 || p[0].Deliveries[0].State != node.StateFailed || !strings.Contains(p[0].Deliveries[0].Reason, "shared room") {
		t.Errorf("the post to river's unshared room: %+v", p)
	}

	// A reply must stay in its conversation.
	if _, _, err := north.Post(ctx, node.Draft{From: "user", To: node.Address{User: "user", Node: "north"}, ReplyTo: first, Body: "x"}); !errors.Is(err, node.ErrNotInConversation) {
		t.Errorf("a direct message replying to a room post: %v, want ErrNotInConversation", err)
	}
}

// TestDirectMessagesAndSearch checks that a user sees only their own
// direct messages, in conversations and in search.
func TestDirectMessagesAndSearch(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)}
	north := newNode(t, "north", c)
	ctx := t.Context()
	for _, u := range []string{"anna", "bob"} {
		if err := north.AddUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := north.CreateRoom(ctx, "general", "General", "", "anna"); err != nil {
		t.Fatal(err)
	}
	send := func(from, to, body string) int64 {
		t.Helper()
		id, _, err := north.Post(ctx, node.Draft{From: from, To: node.Address{User: to, Node: "north"}, Body: body})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	secret := send("anna", "bob", "the key is under the blue stone")
	send("bob", "anna", "thanks, blue is easy")
	if _, _, err := north.Post(ctx, node.Draft{From: "user", Room: "general", Body: "blue paint for the school"}); err != nil {
		t.Fatal(err)
	}

	// Bob answered, so he read anna's message; anna has not read his.
	for user, unread := range map[string]int{"bob": 0, "anna": 1} {
		convs, err := north.Conversations(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		if len(convs) != 1 || convs[0].Unread != unread || convs[0].Last.Body != "thanks, blue is easy" {
			t.Errorf("%s's conversations: %+v", user, convs)
		}
		if u, err := north.Unread(ctx, user); err != nil || u.Direct != unread {
			t.Errorf("%s's unread: %+v %v", user, u, err)
		}
	}
	dm, err := north.DirectMessages(ctx, "user", node.Address{User: "bob", Node: "north"}, node.Page{})
	if err != nil || len(dm) != 0 {
		t.Errorf("user reads anna and bob's conversation through their own: %+v %v", dm, err)
	}
	if _, _, err := north.Message(ctx, "user", secret); !errors.Is(err, node.ErrNoMessage) {
		t.Errorf("user reads anna's message by number: %v", err)
	}

	hits, err := north.Search(ctx, "user", "blue", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 1 || hits[0].Room != "general" || !strings.Contains(hits[0].Snippet, node.MatchStart+"blue"+node.MatchEnd) {
		t.Errorf("user's search for blue: %+v", hits)
	}
	hits, _ = north.Search(ctx, "bob", `blu "OR" * NEAR(`, 0)
	if len(hits) != 0 {
		t.Errorf("operators are words: %+v", hits)
	}
	hits, _ = north.Search(ctx, "bob", "blu", 0)
	if len(hits) != 3 {
		t.Errorf("bob's prefix search: %+v", hits)
	}
}

// TestFiles stores hostile names safely, dedups bodies by hash, enforces
// the quota and removes bodies no one uses.
func TestFiles(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)}
	n := newNode(t, "north", c)
	ctx := t.Context()
	long := strings.Repeat("é", 300) + ".txt"
	names := map[string]string{
		"../../x":         ".._.._x",
		"a\x00b":          "ab",
		"..":              "file",
		" \x07 ":          "file",
		"<img src=x>.png": "<img src=x>.png",
	}
	stage := func(body string) *node.StagedBlob {
		b, err := n.StageBlob(strings.NewReader(body), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for in, want := range names {
		f, err := n.AddFile(ctx, "user", 0, node.NewFile{Name: in, Blob: stage("same body")}, "user", 0)
		if err != nil {
			t.Fatal(err)
		}
		if f.Name != want && !strings.HasPrefix(f.Name, want) {
			t.Errorf("name %q stored as %q, want %q", in, f.Name, want)
		}
	}
	f, err := n.AddFile(ctx, "user", 0, node.NewFile{Name: long, Blob: stage("x")}, "user", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Name) > node.MaxFileName || !utf8.ValidString(f.Name) || !strings.HasSuffix(f.Name, ".txt") {
		t.Errorf("a 300-character name stored as %q (%d bytes)", f.Name, len(f.Name))
	}
	again, err := n.AddFile(ctx, "user", 0, node.NewFile{Name: "../../x", Blob: stage("other")}, "user", 0)
	if err != nil || again.Name != ".._.._x (2)" {
		t.Errorf("a second ../../x: %+v %v", again, err)
	}
	bodies, _ := filepath.Glob(filepath.Join(n.Dir(), "files", "??", "*"))
	if len(bodies) != 3 {
		t.Errorf("%d bodies stored, want 3 (one per distinct content): %v", len(bodies), bodies)
	}
	if _, err := os.Stat(filepath.Join(n.Dir(), "..", "x")); err == nil {
		t.Error("a file appeared outside the data directory")
	}

	if _, err := n.StageBlob(strings.NewReader("0123456789"), 5); !errors.As(err, new(*node.SizeError)) {
		t.Errorf("an upload over the limit: %v", err)
	}
	if _, err := n.AddFile(ctx, "user", 0, node.NewFile{Name: "big", Blob: stage("0123456789")}, "user", 20); !errors.Is(err, node.ErrQuota) {
		t.Errorf("an upload over the quota: %v", err)
	}

	// Deleting the last file of a body removes the body.
	if err := n.DeleteFile(ctx, again.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := n.OpenBlob(again.Hash); err == nil {
		t.Error("a body no file uses is still there")
	}
	folder, err := n.MakeFolder(ctx, "", 0, "Shared/stuff")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.AddFile(ctx, "user", folder, node.NewFile{Name: "a", Blob: stage("a")}, "user", 0); !errors.Is(err, node.ErrNoFile) {
		t.Errorf("a file into another space's folder: %v", err)
	}
	fo, fi, err := n.ListFolder(ctx, "", 0)
	if err != nil || len(fo) != 1 || fo[0].Name != "Shared_stuff" || len(fi) != 0 {
		t.Errorf("shared space: %+v %+v %v", fo, fi, err)
	}
	if _, _, err := n.ListFolder(ctx, "user", folder); !errors.Is(err, node.ErrNoFile) {
		t.Errorf("listing a shared folder as the user's own: %v", err)
	}
}

// TestReadMarksPersist checks that a read mark counts at once and is
// written by Close.
func TestReadMarksPersist(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)}
	dir := filepath.Join(t.TempDir(), "north")
	n, err := node.Init(dir, "north", node.Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, u := range []string{"anna", "bob"} {
		if err := n.AddUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n.CreateRoom(ctx, "general", "", "", "anna"); err != nil {
		t.Fatal(err)
	}
	id, _, err := n.Post(ctx, node.Draft{From: "anna", Room: "general", Body: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	dm, _, err := n.Post(ctx, node.Draft{From: "anna", To: node.Address{User: "bob", Node: "north"}, Body: "psst"})
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := n.Unread(ctx, "bob"); u.Rooms != 1 || u.Direct != 1 {
		t.Fatalf("bob's unread before reading: %+v", u)
	}
	conv, _ := n.DirectConv(ctx, node.Address{User: "anna", Node: "north"})
	if err := n.MarkRead(ctx, "bob", node.RoomConv("general"), id); err != nil {
		t.Fatal(err)
	}
	if err := n.MarkRead(ctx, "bob", conv, dm); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		if u, _ := n.Unread(ctx, "bob"); u.Rooms != 0 || u.Direct != 0 {
			t.Errorf("%s: bob's unread %+v", when, u)
		}
		if rs, _ := n.Rooms(ctx, "bob"); rs[0].Unread != 0 {
			t.Errorf("%s: bob's rooms %+v", when, rs)
		}
		if cs, _ := n.Conversations(ctx, "bob"); len(cs) != 1 || cs[0].Unread != 0 {
			t.Errorf("%s: bob's conversations %+v", when, cs)
		}
	}
	check("at once")
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err = node.Open(dir, node.Options{Now: c.now}); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	check("after a restart")
}
