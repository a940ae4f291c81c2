package carriers_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync"

	"ferry/carriers"
	"ferry/node"
)

// Two nodes sync over an in-memory link: the message is delivered, and
// its receipt comes back in the same session.
func ExampleSync() {
	dir, err := os.MkdirTemp("", "ferry-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	north, _ := node.Init(filepath.Join(dir, "north"), "north", node.Options{})
	river, _ := node.Init(filepath.Join(dir, "river"), "river", node.Options{})
	defer north.Close()
	defer river.Close()
	for _, p := range [][2]*node.Node{{north, river}, {river, north}} {
		card, _ := p[0].Card(nil, nil)
		p[1].AddPeer(ctx, card, "")
	}
	north.AddUser(ctx, "ada")
	river.AddUser(ctx, "bob")
	north.Send(ctx, "ada", node.Address{User: "bob", Node: "river"}, "The bridge is open.")

	a, b := carriers.Pipe(64 << 10)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := carriers.Sync(ctx, river, b, carriers.Options{}); err != nil {
			log.Print(err)
		}
	}()
	rep, err := carriers.Sync(ctx, north, a, carriers.Options{})
	wg.Wait()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: sent %d bundle, got %d receipt back\n", rep.PeerName, rep.Sent.Bundles, rep.Receipts)
	inbox, _ := river.Inbox(ctx, "bob")
	fmt.Printf("bob@river: %q (%s)\n", inbox[0].Body, inbox[0].State)
	sent, _ := north.Inbox(ctx, "ada")
	fmt.Printf("ada@north: %s\n", sent[0].State)
	// Output:
	// river: sent 1 bundle, got 1 receipt back
	// bob@river: "The bridge is open." (received)
	// ada@north: delivered
}
