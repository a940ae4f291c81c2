// Package usb carries bundles on USB sticks (or any folder): the
// store-carry medium for when no two nodes are ever online together.
//
// [Sync] does everything a person expects when they plug a stick into a
// node: it takes in every bundle on the stick that the node has not seen,
// fills the stick, most urgent first and up to its free space, with the
// bundles that the nodes this stick will meet still lack, writes the
// node's signed [Inventory], and prunes from the stick what every
// destination has received or what expired. [Watch] notices sticks as
// they are mounted.
//
// The stick layout is documented in docs/usb.md. Every write is atomic: a
// temporary hidden name, fsync, rename, fsync of the folder; a stick pulled
// out at any moment leaves only debris that the next sync removes.
package usb
