// Package archive keeps a community's archive: files, folders and website
// mirrors, stored as content-defined chunks and described by signed
// snapshots (manifests of paths → chunks), and moved to other
// communities as deltas that carry only the chunks they lack.
//
// Most callers need four functions: [Add] takes a snapshot of a tree into
// the node's archive, [Get] writes an item's current version out as plain
// files, [Send] queues for a peer the bundles that bring its copy of an
// item up to date, and [List] shows the items. Receiving needs no call:
// importing this package registers the handlers that [node.Node.Ingest]
// uses for archive records.
//
// # Storage
//
// Files are cut with FastCDC (profile [ProfileText]: 4/16/64 KiB; large
// incompressible files [ProfileBulk]: 256 KiB/1 MiB/4 MiB) into chunks
// stored once each in append-only pack files under DATA/archive/chunks/,
// indexed by SHA-256 in the store's own SQLite file; see [Store].
// Consecutive small files are chunked as one stream, so a mirror of
// 20,000 tiny pages costs about as many chunks as its size divided by 16
// KiB, not 20,000; each large file starts and ends on a chunk boundary so
// that it dedups across items wherever it appears.
//
// # Practice
//
// What enters a community's archive is chosen together: [Propose] files a
// snapshot as a proposal, members [Endorse] it, and [Adopt] (or the
// endorsement that meets the threshold, per [Settings]) enters it in the
// archive and queues it for every peer. [History] tells who did what.
// [OpenItem] serves an item as an [io/fs.FS], [Index] and [Search] give
// full-text search of its pages, and [Unpack] unpacks an uploaded .zip
// or .tar under the safety rules below.
//
// # Safety
//
// Manifests are parsed by [bundle.ParseArchiveManifest], which refuses
// paths that could leave the item's root, non-regular files and bombs
// before allocating; [Get] writes through an [os.Root] into a new folder
// and never follows or creates links. See docs/archive.md.
package archive
