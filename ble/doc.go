// Package ble carries ferry sessions over Bluetooth Low Energy, with
// github.com/go-ble/ble: node to node when two Pis meet without a LAN, or
// to a laptop or phone that walks between villages.
//
// A node serves the ferry GATT service ([ServiceUUID]): a central writes
// chunks to RX, the peripheral notifies chunks on TX, and INFO tells the
// central the node's ID, the chunk layer's version and its limits. Most
// callers need two functions: [Open] takes a Linux HCI adapter, advertises
// the node and accepts centrals ([Device.Accept]) or connects to nodes it
// scanned ([Device.Dial]); either way the result is a [*Link], a
// carriers.Link over which carriers.Sync runs the same session as over
// TCP.
//
// # Chunks
//
// Session frames (up to [FrameMTU] bytes) are cut into chunks of the
// negotiated ATT MTU − 3 bytes, never longer: go-ble cuts a longer
// notification silently. Each chunk starts with a header byte (data with
// a 6-bit sequence number, last-of-frame, CREDIT or CLOSE). Credits bound
// the chunks in flight each way, so the receiver only ever queues: the
// go-ble write handler never blocks the ATT loop, and a central never
// has more notifications in flight than go-ble's client queues (16). A
// peer that breaks these rules is dropped with a reason ([DropError]),
// which it is told in a CLOSE chunk. The format is specified in
// docs/ble.md.
//
// # Security
//
// go-ble has no pairing: the link is neither authenticated nor
// encrypted. The session hello authenticates both nodes by their keys,
// and bundles are signed and encrypted end to end, so a BLE link is
// trusted no more than the Internet.
//
// # Other systems
//
// go-ble drives adapters on Linux only; elsewhere [Open] returns
// [ErrUnavailable]. The service, the chunk layer and [Connect] build
// everywhere, and the tests run go-ble's real ATT server and GATT client
// over an in-memory connection on any system.
package ble
