package ble_test

import (
	"fmt"

	"ferry/ble"
	"ferry/bundle"
)

// A central reads INFO before it subscribes: the node it reached, and
// how many chunks it may send before it waits for credit.
func ExampleParseInfo() {
	var id bundle.NodeID
	id[0] = 0xfe
	v, _ := ble.Info{Version: ble.Version, Node: id, FrameMTU: ble.FrameMTU, Window: 256}.MarshalBinary()
	info, err := ble.ParseInfo(v)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d bytes: version %d, frames of %d bytes, window %d chunks\n", len(v), info.Version, info.FrameMTU, info.Window)
	// Output: 39 bytes: version 1, frames of 4096 bytes, window 256 chunks
}
