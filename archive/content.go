package archive

import (
	"crypto/sha256"
	"fmt"
	"io"

	"ferry/bundle"
)

// ErrFileMismatch means a file rebuilt from chunks does not hash to what
// the manifest says.
var ErrFileMismatch = fmt.Errorf("archive: file does not match its manifest")

// contentReader reads a snapshot's content stream from the store, chunk
// after chunk, checking each chunk's hash.
type contentReader struct {
	st     *Store
	chunks []bundle.ArchiveChunkRef
	buf    []byte
	rest   []byte
}

func (c *contentReader) Read(p []byte) (int, error) {
	for len(c.rest) == 0 {
		if len(c.chunks) == 0 {
			return 0, io.EOF
		}
		b, err := c.st.Get(c.chunks[0], c.buf)
		if err != nil {
			return 0, err
		}
		c.buf, c.rest, c.chunks = b, b, c.chunks[1:]
	}
	n := copy(p, c.rest)
	c.rest = c.rest[n:]
	return n, nil
}

// rebuild streams every file of m out of the store into the writer open
// returns for it (io.Discard to only check), and checks each against its
// hash in the manifest.
func rebuild(st *Store, m *bundle.ArchiveManifest, open func(f *bundle.ArchiveFile) (io.WriteCloser, error)) error {
	cr := &contentReader{st: st, chunks: m.Chunks}
	for i := range m.Files {
		f := &m.Files[i]
		w, err := open(f)
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.CopyN(io.MultiWriter(w, h), cr, int64(f.Size))
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("archive: %s: %w", f.Path, err)
		}
		if [32]byte(h.Sum(nil)) != f.Hash {
			return fmt.Errorf("%w: %s", ErrFileMismatch, f.Path)
		}
	}
	return nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// Verify checks that every chunk of m is in the store and that every file
// rebuilt from them matches the manifest.
func verify(st *Store, m *bundle.ArchiveManifest) error {
	return rebuild(st, m, func(*bundle.ArchiveFile) (io.WriteCloser, error) { return nopCloser{io.Discard}, nil })
}
