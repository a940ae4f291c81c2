package web

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"

	"github.com/gorilla/mux"

	"ferry/transfer"
)

// Transfers from other communities (package transfer) are filed as plain
// files under the node's received folder. Members list them, browse a
// transfer's folder and download its files; every path is opened through
// an os.Root on the transfer's folder, so nothing outside it can be
// reached, by "..", by an encoded escape or by a planted link. See
// docs/web.md, "Received files".

// receivedPrefix starts the path of a received transfer's folder:
// receivedPrefix + ID + "/" + PATH.
const receivedPrefix = "/files/received/"

// maxListed bounds the entries one folder page shows.
const maxListed = 2000

var errTransferGone = &httpError{status: http.StatusNotFound,
	msg: "This transfer's folder is no longer on the server: someone moved or deleted it."}

type receivedData struct {
	In  []transfer.In
	Out []transfer.Out
}

func (s *Server) receivedPage(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	d := &receivedData{}
	var err error
	if d.In, err = transfer.ListIn(ctx, s.n); err != nil {
		return err
	}
	if d.Out, err = transfer.ListOut(ctx, s.n); err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, "files_received", "Received files", d)
	return nil
}

// transferFolderData is a folder of a received transfer.
type transferFolderData struct {
	T       transfer.In
	Path    []crumb // the folders from the transfer's top to this one
	Folders []entry
	Files   []entry
	More    int // entries not shown (past maxListed)
}

type crumb struct{ Name, URL string }

type entry struct {
	Name string
	URL  string
	Size int64
}

// receivedTransfer returns the received transfer of the route's ID.
func (s *Server) receivedTransfer(ctx context.Context, id string) (*transfer.In, error) {
	ins, err := transfer.ListIn(ctx, s.n)
	if err != nil {
		return nil, err
	}
	for i := range ins {
		if ins[i].ID == id {
			return &ins[i], nil
		}
	}
	return nil, errNotFound
}

// receivedPath checks the part of a request's path below a transfer's
// folder: "" or "dir/" for a folder, "dir/file" for a file. It returns
// the name to open in the folder's root ("." for the top) and whether a
// folder was asked for. Anything but plain names ("..", ".", empty
// elements, backslashes, NUL) is refused.
func receivedPath(rel string) (string, bool, bool) {
	dir := rel == "" || strings.HasSuffix(rel, "/")
	name := strings.TrimSuffix(rel, "/")
	if name == "" {
		return ".", true, true
	}
	if name == "." || !fs.ValidPath(name) || strings.ContainsAny(name, "\\\x00") {
		return "", false, false
	}
	return name, dir, true
}

// transferURL is the page of a path in a received transfer's folder,
// each element escaped.
func transferURL(id, name string, dir bool) string {
	u := receivedPrefix + id + "/"
	if name == "." || name == "" {
		return u
	}
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	u += strings.Join(parts, "/")
	if dir {
		u += "/"
	}
	return u
}

func (s *Server) receivedBrowse(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	t, err := s.receivedTransfer(r.Context(), id)
	if err != nil {
		return err
	}
	name, dir, ok := receivedPath(strings.TrimPrefix(r.URL.Path, receivedPrefix+id+"/"))
	if !ok {
		return errNotFound
	}
	root, err := os.OpenRoot(t.Folder)
	if errors.Is(err, fs.ErrNotExist) {
		return errTransferGone
	} else if err != nil {
		return err
	}
	defer root.Close()
	// Lstat: a link inside the folder, even one pointing inside it, is not
	// something a transfer files, so it is not served.
	fi, err := root.Lstat(name)
	if err != nil {
		return errNotFound
	}
	switch {
	case fi.IsDir() && dir:
		return s.transferFolder(w, r, t, root, name)
	case fi.IsDir():
		http.Redirect(w, r, transferURL(id, name, true), http.StatusMovedPermanently)
		return nil
	case fi.Mode().IsRegular() && !dir:
		return serveReceived(w, r, root, name)
	}
	return errNotFound
}

func (s *Server) transferFolder(w http.ResponseWriter, r *http.Request, t *transfer.In, root *os.Root, name string) error {
	f, err := root.Open(name)
	if err != nil {
		return errNotFound
	}
	defer f.Close()
	list, err := f.ReadDir(-1)
	if err != nil {
		return err
	}
	d := &transferFolderData{T: *t}
	if name != "." {
		parts := strings.Split(name, "/")
		for i, p := range parts {
			d.Path = append(d.Path, crumb{Name: p, URL: transferURL(t.ID, strings.Join(parts[:i+1], "/"), true)})
		}
	}
	for _, e := range list {
		if len(d.Folders)+len(d.Files) == maxListed {
			d.More++
			continue
		}
		full := path.Join(name, e.Name())
		switch {
		case e.IsDir():
			d.Folders = append(d.Folders, entry{Name: e.Name(), URL: transferURL(t.ID, full, true)})
		case e.Type().IsRegular():
			info, err := e.Info()
			if err != nil {
				continue // removed meanwhile
			}
			d.Files = append(d.Files, entry{Name: e.Name(), URL: transferURL(t.ID, full, false), Size: info.Size()})
		}
	}
	title := t.Name
	if name != "." {
		title = path.Base(name)
	}
	s.render(w, r, http.StatusOK, "files_transfer", title, d)
	return nil
}

// serveReceived sends a file of a received transfer as a download, as
// every file of the inbox is sent (serveDownload).
func serveReceived(w http.ResponseWriter, r *http.Request, root *os.Root, name string) error {
	f, err := root.Open(name)
	if err != nil {
		return errNotFound
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return errNotFound
	}
	head := make([]byte, 512)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	serveDownload(w, r, f, fi.ModTime(), path.Base(name), sniff(head[:n], name))
	return nil
}
