package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"

	"ferry/bundle"
	"ferry/node"
)

// ErrOutNotEmpty means Get was asked to write into a folder that holds
// something already.
var ErrOutNotEmpty = errors.New("archive: output folder is not empty")

// Get writes the newest version of item as plain files into out, which
// must be absent or empty, and checks every file against the manifest.
// It writes through an [os.Root] opened on out, creating only folders and
// regular files, each exclusively: nothing can be written outside out.
func Get(ctx context.Context, n *node.Node, item [16]byte, out string) (*bundle.ArchiveManifest, error) {
	m, err := Latest(ctx, n, item)
	if err != nil {
		return nil, err
	}
	if err := m.Verify(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("archive: get: %w", err)
	}
	if ents, err := os.ReadDir(out); err != nil {
		return nil, fmt.Errorf("archive: get: %w", err)
	} else if len(ents) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrOutNotEmpty, out)
	}
	root, err := os.OpenRoot(out)
	if err != nil {
		return nil, fmt.Errorf("archive: get: %w", err)
	}
	defer root.Close()
	st, err := OpenStore(storeDir(n.Dir()))
	if err != nil {
		return nil, err
	}
	err = rebuild(st, m, func(f *bundle.ArchiveFile) (io.WriteCloser, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := bundle.ValidArchivePath(f.Path); err != nil { // parsed already; kept as a second lock
			return nil, err
		}
		if d := path.Dir(f.Path); d != "." {
			if err := root.MkdirAll(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return nil, err
			}
		}
		perm := os.FileMode(0o644)
		if f.Mode == bundle.ArchiveModeExec {
			perm = 0o755
		}
		return root.OpenFile(f.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	})
	if err != nil {
		return m, err
	}
	return m, nil
}
