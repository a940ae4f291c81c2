package web

import (
	"fmt"
	"net/http"
	"testing"

	"ferry/node"
)

// BenchmarkRoomPage measures the page members load most: a room page of 50
// messages (of 100), with the navigation's unread counts, for a logged-in
// member, in process (no network).
func BenchmarkRoomPage(b *testing.B) {
	f := newFixture(b, "north")
	ctx := b.Context()
	for r := range 10 {
		if _, err := f.n.CreateRoom(ctx, fmt.Sprintf("room%d", r), fmt.Sprintf("Room %d", r), "", "x"); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.n.AddUser(ctx, "seed"); err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		if _, _, err := f.n.Post(ctx, node.Draft{From: "seed", Room: fmt.Sprintf("room%d", i%10), Body: fmt.Sprintf("message %d about the well and the bridge", i)}); err != nil {
			b.Fatal(err)
		}
	}
	f.account("ada", roleMember)
	c := f.member("ada", "10.0.0.1")
	b.ResetTimer()
	for i := range b.N {
		resp, _ := c.get(fmt.Sprintf("/rooms/room%d", i%10))
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
