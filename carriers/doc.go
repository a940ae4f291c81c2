// Package carriers moves bundles between ferry nodes that are online
// together: over TCP on a LAN or the Internet, and (later) over BLE and
// LoRa, all with one session protocol.
//
// Most callers need [Sync], which runs one session over any [Link], and a
// medium that makes links: [NewTCP] dials and accepts TLS 1.3 links whose
// certificates are the nodes' own keys, and [TCPServer] listens for
// peers. [Scheduler] syncs with peers on a schedule ("every 6h",
// "daily 03:00"), backing off when one cannot be reached, and
// [Discovery] finds peers on the LAN by UDP beacons. [Stats] keeps, per
// peer, what the network page shows.
//
// # The session
//
// Both ends run the same protocol at once. A hello with a signed
// challenge authenticates each node by its key; a node that does not
// trust its peer refuses it and says why. The two inventories are
// compared by a 16-byte digest, and when they differ, by version vectors
// (per origin, the highest sequence number and the holes below it), with
// the holes sent explicitly or, when they are many and mostly shared, as
// a rateless IBLT sketch. Then each side offers what the other lacks,
// most urgent first (receipts, messages, archive data), up to the peer's
// quota; a bundle cut off mid-way continues from the byte it stopped at
// at the next contact, and is verified whole before it is taken in.
// Receipts come back in the same session. The protocol, its frames and
// its cost model are specified in docs/sync.md.
//
// # Carriers
//
// A medium provides a [Link]: frames of at most its MTU, reliable and in
// order, and what it knows of the peer. The conformance suite in
// carriers/carriertest runs against every carrier: sync both ways, resume
// after a cut, refusal of an untrusted peer, garbage, a stalled peer, and
// a peer that sends other bytes than the bundle it offered.
package carriers
