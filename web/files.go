package web

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"ferry/node"
)

// A file space is a member's own storage or the community's shared one.
// A member sees their own and the shared space; in the shared space they
// may rename and delete what they uploaded, and admins anything.

type filesData struct {
	Shared  bool
	Folder  *node.Folder
	Path    []node.Folder
	Folders []node.Folder
	Files   []fileView
	Rooms   []node.RoomSummary
	Used    int64
	Quota   int64
	MaxSize int64
	Here    string // this page's path, to come back to
}

type fileView struct {
	node.File
	CanEdit bool
}

func (s *Server) filesPage(w http.ResponseWriter, r *http.Request) error {
	ctx, acct := r.Context(), stateOf(r).acct
	d := &filesData{Shared: r.URL.Path == "/files/shared", Quota: s.quota(acct), MaxSize: s.opts.MaxUpload, Here: r.URL.Path}
	owner := acct.User
	if id := mux.Vars(r)["id"]; id != "" {
		fid, _ := strconv.ParseInt(id, 10, 64)
		f, err := s.n.Folder(ctx, fid)
		if err != nil {
			return err
		}
		if f.Owner != "" && f.Owner != acct.User {
			return errNotFound
		}
		d.Folder, d.Shared = f, f.Owner == ""
		if d.Path, err = s.n.FolderPath(ctx, fid); err != nil {
			return err
		}
	}
	if d.Shared {
		owner = ""
	}
	var folder int64
	if d.Folder != nil {
		folder = d.Folder.ID
	}
	folders, files, err := s.n.ListFolder(ctx, owner, folder)
	if err != nil {
		return err
	}
	d.Folders = folders
	for _, f := range files {
		d.Files = append(d.Files, fileView{File: f, CanEdit: canEdit(acct, &f)})
	}
	if d.Used, err = s.n.Usage(ctx, acct.User); err != nil {
		return err
	}
	if d.Rooms, err = s.n.Rooms(ctx, acct.User); err != nil {
		return err
	}
	title := "My files"
	if d.Shared {
		title = "Shared files"
	}
	if d.Folder != nil {
		title = d.Folder.Name
	}
	s.render(w, r, http.StatusOK, "files", title, d)
	return nil
}

func canEdit(a *account, f *node.File) bool {
	return f.Owner == a.User || f.Owner == "" && (f.UploadedBy == a.User || a.Admin())
}

// space reads the space and folder a form names and checks the member
// may write there: their own space, or the shared one.
func (s *Server) space(ctx context.Context, a *account, values map[string]string) (string, int64, error) {
	owner := a.User
	if values["space"] == "shared" {
		owner = ""
	}
	folder, _ := strconv.ParseInt(values["folder"], 10, 64)
	if folder != 0 {
		f, err := s.n.Folder(ctx, folder)
		if err != nil {
			return "", 0, err
		}
		if f.Owner != owner {
			return "", 0, errNotFound
		}
	}
	return owner, folder, nil
}

// folderURL is the page of a folder of a space.
func folderURL(owner string, folder int64) string {
	switch {
	case folder != 0:
		return "/files/folder/" + strconv.FormatInt(folder, 10)
	case owner == "":
		return "/files/shared"
	}
	return "/files"
}

func (s *Server) uploadFile(w http.ResponseWriter, r *http.Request) error {
	acct := stateOf(r).acct
	f, err := s.readForm(r, "file")
	if err != nil {
		return err
	}
	defer f.discard()
	owner, folder, err := s.space(r.Context(), acct, f.values)
	if err != nil {
		return err
	}
	if f.file == nil {
		return &httpError{status: http.StatusBadRequest, msg: "Choose a file to upload."}
	}
	if _, err := s.n.AddFile(r.Context(), owner, folder, *f.file, acct.User, s.quota(acct)); err != nil {
		return err
	}
	s.hub.bump()
	return redirect(w, r, folderURL(owner, folder)+"?ok=uploaded")
}

func (s *Server) makeFolder(w http.ResponseWriter, r *http.Request) error {
	acct := stateOf(r).acct
	f, err := s.readForm(r, "")
	if err != nil {
		return err
	}
	owner, parent, err := s.space(r.Context(), acct, f.values)
	if err != nil {
		return err
	}
	if strings.TrimSpace(f.values["name"]) == "" {
		return &httpError{status: http.StatusBadRequest, msg: "Name the folder."}
	}
	id, err := s.n.MakeFolder(r.Context(), owner, parent, f.values["name"])
	if err != nil {
		return err
	}
	return redirect(w, r, folderURL(owner, id))
}

// ownFile returns a file the member may see, and whether they may change
// it. Someone else's file is "not found", as if it did not exist.
func (s *Server) ownFile(r *http.Request) (*node.File, bool, error) {
	id, _ := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	f, err := s.n.File(r.Context(), id)
	if err != nil {
		return nil, false, err
	}
	acct := stateOf(r).acct
	if f.Owner != "" && f.Owner != acct.User {
		return nil, false, errNotFound
	}
	return f, canEdit(acct, f), nil
}

func (s *Server) downloadFile(w http.ResponseWriter, r *http.Request) error {
	f, _, err := s.ownFile(r)
	if err != nil {
		return err
	}
	return s.serveBody(w, r, f.Hash, f.Name, f.Type)
}

var errNotYours = &httpError{status: http.StatusForbidden, msg: "Only the one who uploaded it, or an admin, may change this."}

func (s *Server) fileAction(w http.ResponseWriter, r *http.Request) error {
	f, editable, err := s.ownFile(r)
	if err != nil {
		return err
	}
	ctx, acct := r.Context(), stateOf(r).acct
	back := folderURL(f.Owner, f.Folder)
	switch mux.Vars(r)["action"] {
	case "rename":
		if !editable {
			return errNotYours
		}
		if err := s.n.RenameFile(ctx, f.ID, r.PostFormValue("name")); err != nil {
			return err
		}
		return redirect(w, r, back+"?ok=saved")
	case "delete":
		if !editable {
			return errNotYours
		}
		if err := s.n.DeleteFile(ctx, f.ID); err != nil {
			return err
		}
		return redirect(w, r, back+"?ok=deleted")
	}
	room := r.PostFormValue("room")
	if _, err := s.n.ShareFile(ctx, acct.User, f.ID, room, strings.TrimSpace(r.PostFormValue("note"))); err != nil {
		return err
	}
	s.hub.bump()
	return redirect(w, r, roomPath(room)+"#latest")
}

func (s *Server) folderAction(w http.ResponseWriter, r *http.Request) error {
	ctx, acct := r.Context(), stateOf(r).acct
	id, _ := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	f, err := s.n.Folder(ctx, id)
	if err != nil {
		return err
	}
	if f.Owner != "" && f.Owner != acct.User {
		return errNotFound
	}
	if f.Owner == "" && !acct.Admin() && mux.Vars(r)["action"] == "delete" {
		return &httpError{status: http.StatusForbidden, msg: "Only admins may delete a shared folder."}
	}
	if mux.Vars(r)["action"] == "rename" {
		if err := s.n.RenameFolder(ctx, id, r.PostFormValue("name")); err != nil {
			return err
		}
		return redirect(w, r, folderURL(f.Owner, id)+"?ok=saved")
	}
	if err := s.n.DeleteFolder(ctx, id); err != nil {
		return err
	}
	return redirect(w, r, folderURL(f.Owner, f.Parent)+"?ok=deleted")
}
