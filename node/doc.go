// Package node is a ferry node: its identity, the peers it trusts, its
// store of bundles and messages, and the rules by which it takes bundles in
// and hands them on.
//
// Most callers need [Init] or [Open] to get a [*Node], [Node.Ingest] to take
// in a bundle from any carrier, and [Node.Outgoing] with [Node.Export] to
// hand bundles to a peer.
//
// # Data directory
//
//	node.key       the ed25519 signing key (PKCS #8 PEM, mode 0600)
//	identity.txt   the age X25519 identity, in age-keygen's format
//	ferry.db       SQLite (WAL): bundles seen, peers, users, messages
//	spool/         bundle bodies kept for carrying, by ID
//	spool/tmp/     files being written; never read as bundles
//
// # Ingest
//
// [Node.Ingest] verifies a bundle's signature, refuses unknown signers,
// expired bundles and bundles it cannot carry, deduplicates by bundle ID,
// then either decrypts and applies every record in one SQLite transaction
// (a bundle for this node) or spools it for carrying (a bundle for a peer).
// It is idempotent, and crash-safe at every step: a kill at any moment
// leaves either nothing or the whole bundle.
package node
