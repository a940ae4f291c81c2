// Package transfer sends folders and files from one ferry node to another
// as bundles, and files what arrives under the receiver's "received"
// folder as plain files: the store-and-forward file transfer of
// docs/transfer.md, like nncp-file and nncp-toss, over any carrier.
//
// A transfer is cut into parts of about PartSize bytes; each part is one
// bundle (kind archive: bulky, routed like archive deltas) that opens with
// a RecordTransfer header and carries whole files as RecordFile records.
// Every part can be filed on its own, in any order; the receiver stages a
// part's files, files them only once the bundle has verified, and sends a
// receipt, so the sender sees each part delivered.
package transfer

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"ferry/archive"
	"ferry/bundle"
	"ferry/node"
)

// DefaultPartSize is the file bytes one part (one bundle) carries at
// most, unless a single file is larger.
const DefaultPartSize = 256 << 20

// MaxFileSize bounds one file: it travels whole in one bundle, and a
// bundle is under bundle.DefaultMaxBundleSize even when nothing compresses.
// Larger files go through the archive (ferry archive add), which cuts them
// into chunks.
const MaxFileSize = bundle.DefaultMaxBundleSize - 64<<20

// recordData bounds the file bytes of one RecordFile record: a larger
// file takes several consecutive records.
const recordData = 16 << 20

// ErrTooLarge means a file is over MaxFileSize.
var ErrTooLarge = errors.New("transfer: file too large for a transfer")

// SendOptions tune Send.
type SendOptions struct {
	Name     string // the transfer's name; default the base name of the (first) path
	Note     string // shown to the receiver
	PartSize int64  // file bytes per part; default DefaultPartSize
	// Progress, if not nil, is called as file bytes are packed, with the
	// bytes done and the total.
	Progress func(done, total int64)
}

// SendReport says what Send queued.
type SendReport struct {
	ID          [16]byte    `json:"-"`
	IDHex       string      `json:"id"`
	Name        string      `json:"name"`
	Files       int         `json:"files"`
	Bytes       int64       `json:"bytes"`
	Parts       int         `json:"parts"`
	BundleBytes int64       `json:"bundle_bytes"`
	Bundles     []bundle.ID `json:"-"`
	Skipped     []string    `json:"skipped,omitempty"` // links, devices, pipes: not sent
}

// source is one file to send.
type source struct {
	root *os.Root
	path string // in root
	wire string // in the transfer
	size int64
}

// Send packs the files under paths (folders or files) into bundles for
// peer and queues them for carrying: any carrier takes them from here
// (ferry usb sync, sync, LoRa for small ones).
func Send(ctx context.Context, n *node.Node, peer bundle.NodeID, paths []string, opts SendOptions) (*SendReport, error) {
	if len(paths) == 0 {
		return nil, errors.New("transfer: nothing to send")
	}
	if opts.PartSize <= 0 {
		opts.PartSize = DefaultPartSize
	}
	opts.PartSize = min(opts.PartSize, MaxFileSize) // a part under the bundle size limit, whatever compresses
	name := opts.Name
	if name == "" {
		name = filepath.Base(filepath.Clean(paths[0]))
		if len(paths) > 1 {
			name = "files"
		}
	}
	if !bundle.ValidTransferName(name) {
		return nil, fmt.Errorf("transfer: %q cannot name a transfer (one folder name, at most %d bytes)", name, bundle.MaxTransferName)
	}
	rep := &SendReport{Name: name}
	files, roots, err := collect(paths, rep)
	defer func() {
		for _, r := range roots {
			r.Close()
		}
	}()
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, errors.New("transfer: no regular files to send")
	}
	parts := plan(files, opts.PartSize)
	if len(parts) > bundle.MaxTransferParts {
		return nil, &bundle.LimitError{What: "transfer parts", Got: uint64(len(parts)), Limit: bundle.MaxTransferParts}
	}
	if _, err := rand.Read(rep.ID[:]); err != nil {
		return nil, err
	}
	rep.IDHex = fmt.Sprintf("%x", rep.ID)
	rep.Files, rep.Parts = len(files), len(parts)
	hdr := bundle.TransferHeader{ID: rep.ID, Name: name, Files: uint64(len(files)), Part: 1, Parts: uint64(len(parts)), Note: opts.Note}
	for _, f := range files {
		hdr.Bytes += uint64(f.size)
	}
	rep.Bytes = int64(hdr.Bytes)
	if _, err := hdr.AppendBinary(nil); err != nil {
		return nil, err
	}
	if _, err := n.DB().ExecContext(ctx, `INSERT INTO transfers_out (id, dest, name, files, bytes, parts, created)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, rep.ID[:], peer[:], name, len(files), rep.Bytes, len(parts), n.Now().UnixMilli()); err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	sealed, cause := sealParts(ctx, n, peer, hdr, parts, &progress{total: rep.Bytes, fn: opts.Progress})
	var failed error
	if cause != nil {
		failed = fmt.Errorf("transfer: %w (nothing of the transfer stays queued)", cause)
	}
	for _, r := range sealed {
		if r.err != nil {
			continue // the parts cancelled because of cause
		}
		rep.Bundles = append(rep.Bundles, r.id)
		rep.BundleBytes += r.size
		if _, err := n.DB().ExecContext(ctx, `INSERT INTO transfer_bundles_out (transfer, bundle) VALUES (?, ?)`, rep.ID[:], r.id[:]); err != nil {
			failed = cmp.Or(failed, fmt.Errorf("transfer: %w", err))
		}
	}
	if failed != nil {
		// A send that fails part way takes back the parts it queued: the
		// receiver never holds half a transfer it cannot complete.
		bg := context.WithoutCancel(ctx)
		if err := n.Withdraw(bg, rep.Bundles); err != nil {
			failed = errors.Join(failed, err)
		}
		n.DB().ExecContext(bg, `DELETE FROM transfer_bundles_out WHERE transfer = ?`, rep.ID[:])
		n.DB().ExecContext(bg, `DELETE FROM transfers_out WHERE id = ?`, rep.ID[:])
		return nil, failed
	}
	return rep, nil
}

// sealers is how many parts are written at once. One part's compression
// runs on one core (a zstd stream is sequential); two parts side by side,
// each compressing serially (bundle.WriterOptions.Serial), use both cores
// of this project's test machine (and two of a Pi's four) and keep the
// heap near 48 MiB (ferry files send sets that soft limit).
const sealers = 2

type sealed struct {
	id   bundle.ID
	size int64
	err  error
}

// sealParts seals the parts, sealers at a time, and returns each one's
// bundle or error, in part order, and the first error met. That error
// stops the parts not yet begun and cancels those under way (their errors
// are only its consequence).
func sealParts(ctx context.Context, n *node.Node, peer bundle.NodeID, hdr bundle.TransferHeader, parts [][]source, pr *progress) ([]sealed, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var cause error
	out := make([]sealed, len(parts))
	next := make(chan int, len(parts))
	for i := range parts {
		next <- i
	}
	close(next)
	workers := min(sealers, len(parts))
	opts := bundle.WriterOptions{Serial: workers > 1}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			pk := &packer{progress: pr}
			for i := range next {
				if err := ctx.Err(); err != nil {
					out[i].err = err
					continue
				}
				h := hdr
				h.Part = uint64(i + 1)
				head, err := h.AppendBinary(nil)
				if err == nil {
					out[i].id, out[i].size, err = n.SealRecordsWith(ctx, peer, bundle.KindArchive, node.PriorityArchive, 0, opts, func(w *bundle.Writer) error {
						if err := w.WriteRecord(bundle.RecordTransfer, head); err != nil {
							return err
						}
						return pk.files(ctx, w, parts[i])
					})
				}
				if err != nil {
					out[i].err = err
					mu.Lock()
					if cause == nil {
						cause = fmt.Errorf("part %d of %d: %w", i+1, len(parts), err)
						cancel()
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for i := range out {
		if cause == nil && out[i].err != nil { // the caller's context ended
			cause = fmt.Errorf("part %d of %d: %w", i+1, len(parts), out[i].err)
		}
	}
	return out, cause
}

// progress adds up the bytes the sealers pack and reports them.
type progress struct {
	mu    sync.Mutex
	done  int64
	total int64
	fn    func(done, total int64)
}

func (p *progress) add(n int64) {
	if p.fn == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	p.fn(p.done, p.total)
}

// collect walks paths into the files to send, in order. One folder sends
// its files by their paths inside it; several paths, or a file, send
// each under its own base name.
func collect(paths []string, rep *SendReport) ([]source, []*os.Root, error) {
	var files []source
	var roots []*os.Root
	seen := map[string]bool{}
	for _, p := range paths {
		root, list, skipped, err := archive.Walk(p)
		if err != nil {
			return nil, roots, fmt.Errorf("transfer: %w", err)
		}
		roots = append(roots, root)
		fi, err := os.Stat(p)
		if err != nil {
			return nil, roots, fmt.Errorf("transfer: %w", err)
		}
		prefix := ""
		if fi.IsDir() && len(paths) > 1 {
			prefix = filepath.Base(filepath.Clean(p)) + "/"
		}
		for _, s := range skipped {
			rep.Skipped = append(rep.Skipped, filepath.Join(p, s))
		}
		for _, f := range list {
			if f.Size > MaxFileSize {
				return nil, roots, fmt.Errorf("%w: %s is %d bytes, the limit is %d (send it with 'ferry archive add' and 'ferry archive send')",
					ErrTooLarge, filepath.Join(p, f.Path), f.Size, MaxFileSize)
			}
			wire := prefix + f.Path
			if seen[wire] {
				return nil, roots, fmt.Errorf("transfer: two files would arrive as %s", wire)
			}
			seen[wire] = true
			files = append(files, source{root: root, path: f.Path, wire: wire, size: int64(f.Size)})
		}
		if len(files) > bundle.MaxTransferFiles {
			return nil, roots, &bundle.LimitError{What: "transfer files", Got: uint64(len(files)), Limit: bundle.MaxTransferFiles}
		}
	}
	return files, roots, nil
}

// plan cuts files, in order, into parts of at most partSize bytes (a
// larger file makes a part of its own) and bundle.MaxTransferPartFiles
// files.
func plan(files []source, partSize int64) [][]source {
	var parts [][]source
	var cur []source
	var size int64
	for _, f := range files {
		if len(cur) > 0 && (size+f.size > partSize || len(cur) == bundle.MaxTransferPartFiles) {
			parts = append(parts, cur)
			cur, size = nil, 0
		}
		cur = append(cur, f)
		size += f.size
	}
	return append(parts, cur)
}

// packer writes files into bundles as RecordFile records, reading ahead
// on a second goroutine so that the disk and the compressor both work.
type packer struct {
	progress *progress
	fh       []byte
}

// block is a piece of a file read ahead.
type block struct {
	buf  *[]byte
	n    int
	err  error
	file int // index in the part
}

const (
	readBlock = 1 << 20
	readAhead = 4 // blocks, per sealer
)

var blocks = sync.Pool{New: func() any { b := make([]byte, readBlock); return &b }}

// files writes the files of one part into w.
func (p *packer) files(ctx context.Context, w *bundle.Writer, part []source) error {
	ch := make(chan block, readAhead)
	stop := make(chan struct{})
	defer close(stop)
	go readFiles(part, ch, stop)
	next := func() (block, error) {
		select {
		case b := <-ch:
			return b, b.err
		case <-ctx.Done():
			return block{}, ctx.Err()
		}
	}
	for i, f := range part {
		var off int64
		for first := true; first || off < f.size; first = false {
			size := min(f.size-off, recordData)
			fh := bundle.FileHeader{Path: f.wire, Size: uint64(f.size), Offset: uint64(off)}
			var err error
			if p.fh, err = fh.AppendBinary(p.fh[:0]); err != nil {
				return err
			}
			if err := w.BeginRecord(bundle.RecordFile, uint64(len(p.fh))+uint64(size)); err != nil {
				return err
			}
			if _, err := w.Write(p.fh); err != nil {
				return err
			}
			for left := size; left > 0; {
				b, err := next()
				if err != nil {
					return err
				}
				if b.file != i || int64(b.n) > left {
					return fmt.Errorf("transfer: %s changed while it was read", f.wire)
				}
				_, err = w.Write((*b.buf)[:b.n])
				blocks.Put(b.buf)
				if err != nil {
					return err
				}
				left -= int64(b.n)
				p.progress.add(int64(b.n))
			}
			off += size
		}
	}
	return nil
}

// readFiles reads part's files in order into blocks of at most
// recordData-aligned size, so that no block straddles a record.
func readFiles(part []source, ch chan<- block, stop <-chan struct{}) {
	send := func(b block) bool {
		select {
		case ch <- b:
			return true
		case <-stop:
			if b.buf != nil {
				blocks.Put(b.buf)
			}
			return false
		}
	}
	ahead := &prefetcher{part: part}
	defer ahead.close()
	for i, f := range part {
		r, err := ahead.open(i)
		if err != nil {
			send(block{err: fmt.Errorf("transfer: %w", err), file: i})
			return
		}
		var off int64
		for off < f.size {
			buf := blocks.Get().(*[]byte)
			want := min(int64(readBlock), f.size-off, recordData-off%recordData)
			k, err := io.ReadFull(r, (*buf)[:want])
			if err != nil {
				blocks.Put(buf)
				r.Close()
				if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
					err = fmt.Errorf("%s shrank while it was read", f.wire)
				}
				send(block{err: fmt.Errorf("transfer: %w", err), file: i})
				return
			}
			off += int64(k)
			if !send(block{buf: buf, n: k, file: i}) {
				r.Close()
				return
			}
		}
		var one [1]byte
		grew, _ := r.Read(one[:])
		r.Close()
		if grew > 0 {
			send(block{err: fmt.Errorf("transfer: %s grew while it was read", f.wire), file: i})
			return
		}
	}
}

// A cold read of many small files waits on the disk once per file. The
// prefetcher opens the next files ahead of the reader and asks the kernel
// to read them in (posix_fadvise WILLNEED), so that the disk has many
// requests at once: warm or cold, the compressor is then what sets the
// pace.
const (
	prefetchFiles = 32
	prefetchBytes = 32 << 20
)

type prefetcher struct {
	part  []source
	next  int // the next file to open ahead
	ahead map[int]*os.File
	bytes int64 // bytes of the files open ahead
}

// open returns file i of the part, opened ahead or now, and opens more
// ahead of it.
func (p *prefetcher) open(i int) (*os.File, error) {
	if p.ahead == nil {
		p.ahead = map[int]*os.File{}
	}
	f, ok := p.ahead[i]
	if ok {
		delete(p.ahead, i)
		p.bytes -= p.part[i].size
	} else {
		var err error
		if f, err = p.part[i].root.Open(p.part[i].path); err != nil {
			return nil, err
		}
		p.next = max(p.next, i+1)
	}
	for p.next < len(p.part) && len(p.ahead) < prefetchFiles && p.bytes < prefetchBytes {
		s := p.part[p.next]
		g, err := s.root.Open(s.path)
		if err != nil {
			break // reported when the reader gets there
		}
		unix.Fadvise(int(g.Fd()), 0, s.size, unix.FADV_WILLNEED)
		p.ahead[p.next] = g
		p.bytes += s.size
		p.next++
	}
	return f, nil
}

func (p *prefetcher) close() {
	for _, f := range p.ahead {
		f.Close()
	}
}
