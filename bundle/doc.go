// Package bundle reads and writes ferry bundles: the only unit that moves
// between ferry nodes, over USB sticks, LAN, BLE and LoRa alike.
//
// A bundle is one self-describing, streamable file:
//
//	magic      "FERRY" 0x00 0x00 0x01      8 bytes, the version is in the magic
//	hlen       uvarint                     length of the header
//	header     hlen bytes                  fixed fields, then optional extensions
//	signature  64 bytes                    ed25519 by Header.Source over magic|hlen|header
//	payload    Header.PayloadSize bytes    an age file (X25519 recipients) of a
//	                                       zstd stream of records
//
// The signature sits outside the encryption, so any node can check who made
// a bundle, and that its payload is intact, before it stores or carries a
// bundle it cannot read. The bundle's [ID] is the SHA-256 of the signed bytes.
//
// Most callers need two functions: [NewWriter] to pack records into a bundle,
// and [NewReader] to verify one, after which [Reader.Open] decrypts its
// records for a recipient. Both stream: a bundle of a gigabyte never sits in
// memory, and every limit in [Limits] is checked before anything is allocated.
//
// # Errors
//
// A refused bundle yields an error that says what was refused: a
// [*LimitError] for anything over a limit, a [*FormatError] for malformed
// bytes, or one of the sentinels ([ErrNotBundle], [ErrSignature],
// [ErrPayloadHash], [ErrTruncated], ...) wrapped with context.
//
// The format is specified, byte by byte, in docs/bundle.md.
package bundle
