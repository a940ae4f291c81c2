package transfer

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"ferry/bundle"
	"ferry/node"
)

// ReceivedDir is the folder, in a node's data directory, under which
// transfers are filed: received/SENDER/NAME/....
const ReceivedDir = "received"

// stagingDir, under ReceivedDir, holds the files of bundles being taken
// in, one folder per bundle, until the bundle has verified.
const stagingDir = ".staging"

// claimsDir, under ReceivedDir, holds one file per folder a transfer has
// claimed: the transfer's ID and sender.
const claimsDir = ".claims"

// staleStaging is the age after which a staging folder no ingest is using
// (the process was killed) is removed as debris.
const staleStaging = time.Hour

func init() {
	node.RegisterRecordHandler(bundle.RecordTransfer, applyTransfer)
	node.RegisterRecordHandler(bundle.RecordFile, applyFile)
	node.RegisterCommitHook(fileTransfer)
	node.RegisterRollbackHook(dropStaged)
}

// Received returns the folder transfers to n are filed under.
func Received(n *node.Node) string { return filepath.Join(n.Dir(), ReceivedDir) }

// batch is the part of a transfer that one ingest transaction is taking in.
type batch struct {
	tx    *sql.Tx
	id    bundle.ID
	src   bundle.NodeID
	h     *bundle.TransferHeader
	dir   string // the received folder
	top   *os.File
	stage *tree // .staging/BUNDLE
	files []*staged
	bytes uint64
	cur   *os.File // the file the last record wrote, open for its next record
}

type staged struct {
	path    string // in the transfer
	size    uint64
	written uint64
}

var batches sync.Map // node data dir → *batch

func batchFor(n *node.Node, tx *sql.Tx) *batch {
	if v, ok := batches.Load(n.Dir()); ok {
		if b := v.(*batch); b.tx == tx {
			return b
		}
	}
	return nil
}

func refuse(format string, args ...any) error {
	return &bundle.FormatError{Field: "transfer", Reason: fmt.Sprintf(format, args...)}
}

// applyTransfer opens a transfer part: one RecordTransfer per bundle,
// before its files.
func applyTransfer(ctx context.Context, n *node.Node, tx *sql.Tx, h *bundle.Header, body io.Reader) error {
	if batchFor(n, tx) != nil {
		return refuse("a second transfer record in one bundle")
	}
	if h.Kind != bundle.KindArchive {
		return refuse("a transfer in a bundle of kind %d, not archive", h.Kind)
	}
	raw, err := io.ReadAll(io.LimitReader(bundleBody{body}, 4<<10))
	if err != nil {
		return err
	}
	th, err := bundle.ParseTransferHeader(raw)
	if err != nil {
		return err
	}
	dir := Received(n)
	if err := os.MkdirAll(filepath.Join(dir, stagingDir), 0o755); err != nil {
		return fmt.Errorf("transfer: %w", err)
	}
	id := h.ID()
	// BUNDLE.PID.RANDOM: two processes taking in the same bundle at once
	// (serve and a usb sync) stage apart, and a killed one's folder is
	// known by its PID.
	var rnd [4]byte
	rand.Read(rnd[:])
	name := fmt.Sprintf("%s.%d.%x", hex.EncodeToString(id[:]), os.Getpid(), rnd)
	sweepStaging(dir)
	top, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("transfer: %w", err)
	}
	b := &batch{tx: tx, id: id, src: h.Source, h: th, dir: dir, top: top}
	if b.stage, err = newTree(top, path.Join(stagingDir, name)); err != nil {
		top.Close()
		return err
	}
	batches.Store(n.Dir(), b)
	return nil
}

// sweepStaging removes staging folders left by killed ingests: those of
// a process that is gone, and any older than staleStaging.
func sweepStaging(dir string) {
	entries, err := os.ReadDir(filepath.Join(dir, stagingDir))
	if err != nil {
		return
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			continue
		}
		parts := strings.Split(e.Name(), ".")
		pid, perr := strconv.Atoi(parts[min(1, len(parts)-1)])
		gone := len(parts) != 3 || perr != nil || (pid != os.Getpid() && !alive(pid))
		if gone || time.Since(info.ModTime()) > staleStaging {
			os.RemoveAll(filepath.Join(dir, stagingDir, e.Name()))
		}
	}
}

// applyFile stages one RecordFile record of a transfer. A file record
// outside a transfer is not for this package and is skipped.
func applyFile(ctx context.Context, n *node.Node, tx *sql.Tx, h *bundle.Header, body io.Reader) error {
	b := batchFor(n, tx)
	if b == nil {
		return nil
	}
	body = bundleBody{body}
	var head [bundle.MaxPathLen + 32]byte
	k, err := io.ReadFull(body, head[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return err
	}
	fh, used, err := bundle.ParseFileHeader(head[:k])
	if err != nil {
		return err
	}
	data := head[used:k]
	var f *staged
	if fh.Offset == 0 {
		if uint64(len(b.files)) >= b.h.Files {
			return refuse("more files than the %d the transfer announced", b.h.Files)
		}
		if len(b.files) >= bundle.MaxTransferPartFiles {
			return refuse("more than %d files in one part", bundle.MaxTransferPartFiles)
		}
		if err := checkElements(fh.Path); err != nil {
			return err
		}
		if err := b.closeCur(); err != nil {
			return err
		}
		f = &staged{path: fh.Path, size: fh.Size}
		b.files = append(b.files, f)
		if b.cur, err = b.stage.create(fh.Path); err != nil {
			return err
		}
	} else {
		if len(b.files) == 0 || b.cur == nil {
			return refuse("%s continues a file that did not start", fh.Path)
		}
		f = b.files[len(b.files)-1]
		if f.path != fh.Path || f.size != fh.Size || f.written != fh.Offset {
			return refuse("%s continues at %d, not where the file stopped", fh.Path, fh.Offset)
		}
	}
	w := &boundedWriter{w: b.cur, left: f.size - f.written, path: f.path}
	if _, err := w.Write(data); err != nil {
		return err
	}
	buf := copyBufs.Get().(*[]byte)
	_, err = io.CopyBuffer(w, body, *buf)
	copyBufs.Put(buf)
	if err != nil {
		return err
	}
	written := f.size - f.written - w.left
	f.written += written
	b.bytes += written
	if b.bytes > b.h.Bytes {
		return refuse("more bytes than the %d the transfer announced", b.h.Bytes)
	}
	return nil
}

// checkElements refuses a path no file system here can hold: a NUL byte,
// or an element longer than 255 bytes.
func checkElements(p string) error {
	for _, e := range strings.Split(p, "/") {
		if len(e) > maxName || strings.IndexByte(e, 0) >= 0 {
			return refuse("%q cannot be a file name here (a NUL byte, or over %d bytes)", e, maxName)
		}
	}
	return nil
}

// maxName is the longest file name, in bytes, of the file systems ferry
// runs on (ext4, FAT32 and exFAT count 255).
const maxName = 255

// bundleBody blames the errors of reading a record on the bundle: a
// payload cut short, damaged or failing its hash is refused.
type bundleBody struct{ r io.Reader }

func (b bundleBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = node.RecordError(err)
	}
	return n, err
}

// boundedWriter refuses bytes past a file's declared size.
type boundedWriter struct {
	w    io.Writer
	left uint64
	path string
}

func (w *boundedWriter) Write(p []byte) (int, error) {
	if uint64(len(p)) > w.left {
		return 0, refuse("%s is longer than its declared size", w.path)
	}
	n, err := w.w.Write(p)
	w.left -= uint64(n)
	if err != nil {
		return n, fmt.Errorf("transfer: %w", err)
	}
	return n, nil
}

// copyBufs hold file bytes on their way from a bundle to a staged file.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

func (b *batch) closeCur() error {
	if b.cur == nil {
		return nil
	}
	err := b.cur.Close()
	b.cur = nil
	if err != nil {
		return fmt.Errorf("transfer: %w", err)
	}
	return nil
}

// fileTransfer runs once a bundle's payload has verified, before its
// ingest commits: it makes the staged files durable, moves them into the
// transfer's folder, records the part and queues a receipt. A kill before
// the commit leaves the files in place and the bundle not taken in: the
// next ingest of it writes the same files again, over them.
func fileTransfer(ctx context.Context, n *node.Node, tx *sql.Tx) error {
	v, ok := batches.Load(n.Dir())
	if !ok || v.(*batch).tx != tx {
		return nil
	}
	b := v.(*batch)
	if err := b.closeCur(); err != nil {
		return err
	}
	for _, f := range b.files {
		if f.written != f.size {
			return refuse("%s ends at %d of its %d bytes", f.path, f.written, f.size)
		}
	}
	folder, err := b.folder(ctx, n, tx)
	if err != nil {
		return err
	}
	dst, err := newTree(b.top, folder)
	if err != nil {
		return err
	}
	defer dst.close()
	// Every file must have a place before the first one moves: a part
	// that clashes with an earlier one is refused with nothing of it filed.
	for _, f := range b.files {
		if err := dst.canTake(f.path); err != nil {
			return err
		}
	}
	if err := syncFS(b.top); err != nil {
		return err
	}
	for _, f := range b.files {
		if err := b.stage.moveTo(dst, f.path); err != nil {
			return err
		}
	}
	if err := syncFS(b.top); err != nil {
		return err
	}
	now := n.Now().UnixMilli()
	if _, err := tx.ExecContext(ctx, `INSERT INTO transfers_in (id, source, name, folder, note, files, bytes, parts, first_at, last_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET last_at = excluded.last_at`,
		b.h.ID[:], b.src[:], b.h.Name, folder, b.h.Note, b.h.Files, b.h.Bytes, b.h.Parts, now, now); err != nil {
		return fmt.Errorf("transfer: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO transfer_parts_in (transfer, bundle, part, files, bytes)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, b.h.ID[:], b.id[:], b.h.Part, len(b.files), b.bytes); err != nil {
		return fmt.Errorf("transfer: %w", err)
	}
	r := &bundle.Receipt{Bundle: b.id, State: bundle.ReceiptDelivered, At: n.Now()}
	rb, err := r.AppendBinary(nil)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO pending_receipts (dest, body) VALUES (?, ?)`, b.src[:], rb); err != nil {
		return fmt.Errorf("transfer: %w", err)
	}
	batches.Delete(n.Dir())
	b.release()
	return nil
}

// release closes what b holds open and removes its staging folder.
func (b *batch) release() {
	b.closeCur()
	b.stage.close()
	os.RemoveAll(filepath.Join(b.dir, filepath.FromSlash(b.stage.base)))
	b.top.Close()
}

// folder returns where the transfer's files go, in the received folder:
// the folder of its earlier parts, or SENDER/NAME, numbered when another
// transfer holds that name. A name is held by a transfer taken in, by a
// claim (received/.claims: a part killed before its commit left its files
// there), or by a folder that is there with files and no claim.
func (b *batch) folder(ctx context.Context, n *node.Node, tx *sql.Tx) (string, error) {
	var folder string
	var src []byte
	err := tx.QueryRowContext(ctx, `SELECT folder, source FROM transfers_in WHERE id = ?`, b.h.ID[:]).Scan(&folder, &src)
	if err == nil {
		if !bytes.Equal(src, b.src[:]) {
			return "", refuse("transfer %x is another sender's", b.h.ID)
		}
		return folder, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("transfer: %w", err)
	}
	sender := b.src.Short()
	if p, err := n.Peer(ctx, b.src.String()); err == nil {
		sender = p.Name
	}
	base := path.Join(visibleName(sender, maxName), visibleName(b.h.Name, maxName-len(" (99999)")))
	for i := 1; i < 100000; i++ {
		folder = base
		if i > 1 {
			folder = fmt.Sprintf("%s (%d)", base, i)
		}
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM transfers_in WHERE folder = ?`, folder).Scan(&one)
		if err == nil {
			continue
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return "", fmt.Errorf("transfer: %w", err)
		}
		if ok, err := b.claim(folder); err != nil || ok {
			return folder, err
		}
	}
	return "", fmt.Errorf("transfer: no free folder for %s", base)
}

// claim takes folder for this transfer unless a claim of another holds
// it, or it is there already with files in it and no claim.
func (b *batch) claim(folder string) (bool, error) {
	sum := sha256.Sum256([]byte(folder))
	name := path.Join(claimsDir, hex.EncodeToString(sum[:16]))
	full := filepath.Join(b.dir, filepath.FromSlash(name))
	want := hex.EncodeToString(b.h.ID[:]) + " " + hex.EncodeToString(b.src[:])
	if got, err := os.ReadFile(full); err == nil {
		return string(got) == want, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("transfer: %w", err)
	}
	if entries, err := os.ReadDir(filepath.Join(b.dir, filepath.FromSlash(folder))); err == nil && len(entries) > 0 {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Join(b.dir, claimsDir), 0o755); err != nil {
		return false, fmt.Errorf("transfer: %w", err)
	}
	if err := os.WriteFile(full, []byte(want), 0o644); err != nil {
		return false, fmt.Errorf("transfer: %w", err)
	}
	return true, nil
}

// visibleName makes s a safe folder name that is not hidden (and so never
// ".staging").
func visibleName(s string, max int) string {
	s = node.CleanFileName(s)
	if strings.HasPrefix(s, ".") {
		s = "_" + s
	}
	for len(s) > max {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// dropStaged removes what an ingest that did not commit staged.
func dropStaged(n *node.Node, tx *sql.Tx) {
	b := batchFor(n, tx)
	if b == nil {
		return
	}
	batches.Delete(n.Dir())
	b.release()
}
