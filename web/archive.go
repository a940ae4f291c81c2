package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"ferry/archive"
	"ferry/bundle"
)

// The archive's pages: browse and search, an item's page, proposals
// (with uploads), endorsements and adoption, the history, and the
// read-only serving of an item's files (a website mirror) under a
// sandboxing Content-Security-Policy. See docs/web.md, "The archive".

// archiveCSP is the policy every archived file is served with. sandbox
// without allow-same-origin puts the page in an opaque origin of its own:
// its scripts run, but cannot read this site's cookies or storage, and
// every request it makes is cross-site, so the session cookie
// (SameSite=Lax) is not sent with it and CORS keeps the answers from it.
// connect-src 'none' stops fetch and XMLHttpRequest outright.
const archiveCSP = "sandbox allow-scripts allow-forms allow-popups allow-modals; " +
	"default-src 'self' data: blob: 'unsafe-inline' 'unsafe-eval'; connect-src 'none'; form-action 'none'; " +
	"frame-ancestors 'self'; base-uri 'self'"

var errBadViewLink = &httpError{status: http.StatusForbidden, msg: "This link does not open this item: open it again from the archive."}

// viewTTL is how long a link to an item's files works.
const viewTTL = 12 * time.Hour

// archiveState is the archive side of a Server.
type archiveState struct {
	keyOnce sync.Once
	key     []byte
	keyErr  error

	mu       sync.Mutex
	items    map[[16]byte]*archive.ItemFS // the last few items served
	indexing chan struct{}                // closed when the index run under way ends
	stop     context.CancelFunc           // cancels index runs when the server closes
	ctx      context.Context
	wg       sync.WaitGroup
}

// indexWait is how long a page waits for the archive's index to catch
// up before it shows what is indexed so far.
const indexWait = 3 * time.Second

// refreshIndex brings the archive's full-text index up to date in the
// background (one run at a time, ended by Close), and waits up to wait
// for it: it reports whether the index is up to date.
func (s *Server) refreshIndex(wait time.Duration) bool {
	st := &s.arch
	st.mu.Lock()
	if st.ctx == nil {
		st.ctx, st.stop = context.WithCancel(context.Background())
	}
	if st.indexing == nil && st.ctx.Err() == nil {
		done := make(chan struct{})
		st.indexing = done
		st.wg.Add(1)
		go func() {
			defer st.wg.Done()
			if _, err := archive.Index(st.ctx, s.n); err != nil && st.ctx.Err() == nil {
				s.log.Error("indexing the archive", "err", err)
			}
			st.mu.Lock()
			st.indexing = nil
			st.mu.Unlock()
			close(done)
		}()
	}
	running := st.indexing
	st.mu.Unlock()
	if running == nil {
		return false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-running:
		return true
	case <-t.C:
		return false
	}
}

// close stops an index run under way and waits for it.
func (st *archiveState) close() {
	st.mu.Lock()
	if st.stop != nil {
		st.stop()
	}
	st.mu.Unlock()
	st.wg.Wait()
}

type archiveListData struct {
	Query    string
	Items    []archive.Item
	Hits     []archiveHit
	Searched bool
	Indexing bool // the index is catching up with new items
	Open     int  // open proposals
}

type archiveHit struct {
	archive.Hit
	ItemTitle string
}

// archivePage lists the archive's items, or searches it.
func (s *Server) archivePage(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	d := &archiveListData{Query: strings.TrimSpace(r.URL.Query().Get("q"))}
	if len(d.Query) > 200 {
		d.Query = d.Query[:200]
	}
	d.Indexing = !s.refreshIndex(indexWait)
	items, err := archive.List(ctx, s.n)
	if err != nil {
		return err
	}
	d.Items = items
	if d.Query != "" {
		d.Searched = true
		titles := map[string]string{}
		for _, it := range items {
			titles[it.ID] = it.Title
		}
		hits, err := archive.Search(ctx, s.n, d.Query, 50)
		if err != nil {
			return err
		}
		for _, h := range hits {
			d.Hits = append(d.Hits, archiveHit{Hit: h, ItemTitle: titles[h.Item]})
		}
	}
	open, err := archive.Proposals(ctx, s.n, archive.StateOpen)
	if err != nil {
		return err
	}
	d.Open = len(open)
	s.render(w, r, http.StatusOK, "archive", "Archive", d)
	return nil
}

type archiveItemData struct {
	Item  archive.Item
	Files []archiveFile
	More  int
	Index string // the page a website opens on, "" if none
}

type archiveFile struct {
	Path string
	Size int64
}

const itemFilesShown = 500

// archiveItemPage shows one item: what it is, and its files.
func (s *Server) archiveItemPage(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id, err := itemID(mux.Vars(r)["item"])
	if err != nil {
		return err
	}
	items, err := archive.List(ctx, s.n)
	if err != nil {
		return err
	}
	d := &archiveItemData{}
	found := false
	for _, it := range items {
		if it.ID == hex.EncodeToString(id[:]) {
			d.Item, found = it, true
		}
	}
	if !found {
		return errNotFound
	}
	if fsys, err := s.itemFS(ctx, id); err == nil {
		for i, f := range fsys.Manifest().Files {
			if i == itemFilesShown {
				d.More = len(fsys.Manifest().Files) - i
				break
			}
			d.Files = append(d.Files, archiveFile{Path: f.Path, Size: int64(f.Size)})
		}
		d.Index = startPage(fsys.Manifest().Files)
	}
	s.render(w, r, http.StatusOK, "archive_item", d.Item.Title, d)
	return nil
}

// startPage returns the page a website opens on: the index.html nearest
// the root, or the item's only file.
func startPage(files []bundle.ArchiveFile) string {
	best := ""
	for _, f := range files {
		if b := path.Base(f.Path); (b == "index.html" || b == "index.htm") &&
			(best == "" || strings.Count(f.Path, "/") < strings.Count(best, "/")) {
			best = f.Path
		}
	}
	if best == "" && len(files) == 1 {
		best = files[0].Path
	}
	return best
}

func itemID(s string) ([16]byte, error) {
	var id [16]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 16 {
		return id, errNotFound
	}
	return [16]byte(b), nil
}

// archiveOpen sends a member to a file of an item, through a link that
// carries its own proof of access (see archiveView).
func (s *Server) archiveOpen(w http.ResponseWriter, r *http.Request) error {
	id, err := itemID(mux.Vars(r)["item"])
	if err != nil {
		return err
	}
	p := strings.TrimPrefix(r.URL.Query().Get("path"), "/")
	if p != "" && !validViewPath(p) {
		return errNotFound
	}
	if path.Base(p) == "index.html" {
		p = strings.TrimSuffix(p, "index.html") // the file server's own name for it
	}
	tok, err := s.viewToken("item/"+hex.EncodeToString(id[:]), stateOf(r).acct.User, s.now().Add(viewTTL))
	if err != nil {
		return err
	}
	return redirect(w, r, "/archive/view/"+hex.EncodeToString(id[:])+"/"+tok+"/"+p)
}

func validViewPath(p string) bool {
	for _, e := range strings.Split(p, "/") {
		if e == ".." || e == "." {
			return false
		}
	}
	return true
}

// viewToken makes the access proof of a link to an item's files:
// user.expiry.mac, the MAC (HMAC-SHA256 with a key kept in the
// database) over the scope (item or proposal), the user and the expiry. The files' pages run
// in an opaque origin that the session cookie does not reach, so the
// proof travels in the path, and their relative links keep it.
func (s *Server) viewToken(scope, user string, exp time.Time) (string, error) {
	key, err := s.archiveKey()
	if err != nil {
		return "", err
	}
	e := strconv.FormatInt(exp.Unix(), 10)
	return user + "." + e + "." + viewMAC(key, scope, user, e), nil
}

func viewMAC(key []byte, scope, user, exp string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(scope))
	m.Write([]byte{0})
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(exp))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// checkViewToken returns the active account a token was made for.
func (s *Server) checkViewToken(ctx context.Context, scope, tok string) (*account, error) {
	user, rest, ok1 := strings.Cut(tok, ".")
	exp, mac, ok2 := strings.Cut(rest, ".")
	key, err := s.archiveKey()
	if err != nil {
		return nil, err
	}
	if !ok1 || !ok2 || !hmac.Equal([]byte(mac), []byte(viewMAC(key, scope, user, exp))) {
		return nil, errBadViewLink
	}
	if e, err := strconv.ParseInt(exp, 10, 64); err != nil || s.now().Unix() > e {
		return nil, &httpError{status: http.StatusForbidden, msg: "This link has expired: open the item again from the archive."}
	}
	a, err := s.account(ctx, user)
	if err != nil || !a.Active {
		return nil, errBadViewLink
	}
	return a, nil
}

// archiveKey returns the key of view links, made on first use.
func (s *Server) archiveKey() ([]byte, error) {
	st := &s.arch
	st.keyOnce.Do(func() {
		ctx := context.Background()
		var v string
		err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'web_archive_view_key'`).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			b := make([]byte, 32)
			rand.Read(b)
			v = hex.EncodeToString(b)
			_, err = s.db.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('web_archive_view_key', ?) ON CONFLICT DO NOTHING`, v)
			if err == nil {
				err = s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'web_archive_view_key'`).Scan(&v)
			}
		}
		if err == nil {
			st.key, err = hex.DecodeString(v)
		}
		st.keyErr = err
	})
	return st.key, st.keyErr
}

// archiveView serves an item's files read-only, as a web server would
// serve the mirror's folder, under archiveCSP. Only names of the
// snapshot are served ([archive.ItemFS] takes only fs.ValidPath names).
func (s *Server) archiveView(w http.ResponseWriter, r *http.Request) error {
	v := mux.Vars(r)
	id, err := itemID(v["item"])
	if err != nil {
		return err
	}
	if _, err := s.checkViewToken(r.Context(), "item/"+hex.EncodeToString(id[:]), v["token"]); err != nil {
		return err
	}
	fsys, err := s.itemFS(r.Context(), id)
	if err != nil {
		return errNotFound
	}
	serveSandboxed(w, r, "/archive/view/"+v["item"]+"/"+v["token"], fsys)
	return nil
}

// serveSandboxed serves the files of a snapshot under prefix, read-only,
// with archiveCSP.
func serveSandboxed(w http.ResponseWriter, r *http.Request, prefix string, fsys *archive.ItemFS) {
	h := w.Header()
	h.Set("Content-Security-Policy", archiveCSP)
	// The sandboxed page's own requests come from its opaque origin: a
	// same-origin resource policy would refuse them. The path's token is
	// what keeps other sites out.
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	h.Set("Cache-Control", "private, max-age=300")
	http.StripPrefix(prefix, http.FileServerFS(fsys)).ServeHTTP(w, r)
}

type proposalData struct {
	P     proposalView
	Files []archiveFile
	More  int
	Index string
}

// proposalPage shows what a proposal holds, so that members can look
// before they endorse.
func (s *Server) proposalPage(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err != nil {
		return errNotFound
	}
	p, err := archive.GetProposal(ctx, s.n, id)
	if err != nil {
		return archiveError(err)
	}
	set, err := archive.GetSettings(ctx, s.n)
	if err != nil {
		return err
	}
	d := &proposalData{P: viewOf(*p, stateOf(r), set)}
	files := p.Manifest().Files
	for i, f := range files {
		if i == itemFilesShown {
			d.More = len(files) - i
			break
		}
		d.Files = append(d.Files, archiveFile{Path: f.Path, Size: int64(f.Size)})
	}
	d.Index = startPage(files)
	s.render(w, r, http.StatusOK, "archive_proposal", p.Meta.Title, d)
	return nil
}

// proposalOpen sends a member to a file of a proposal (see archiveOpen).
func (s *Server) proposalOpen(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	p := strings.TrimPrefix(r.URL.Query().Get("path"), "/")
	if p != "" && !validViewPath(p) {
		return errNotFound
	}
	if path.Base(p) == "index.html" {
		p = strings.TrimSuffix(p, "index.html")
	}
	tok, err := s.viewToken("proposal/"+id, stateOf(r).acct.User, s.now().Add(viewTTL))
	if err != nil {
		return err
	}
	return redirect(w, r, "/archive/pview/"+id+"/"+tok+"/"+p)
}

// proposalView serves a proposal's files as archiveView serves an item's.
func (s *Server) proposalView(w http.ResponseWriter, r *http.Request) error {
	v := mux.Vars(r)
	if _, err := s.checkViewToken(r.Context(), "proposal/"+v["id"], v["token"]); err != nil {
		return err
	}
	id, err := strconv.ParseInt(v["id"], 10, 64)
	if err != nil {
		return errNotFound
	}
	fsys, err := archive.OpenProposal(r.Context(), s.n, id)
	if err != nil {
		return errNotFound
	}
	serveSandboxed(w, r, "/archive/pview/"+v["id"]+"/"+v["token"], fsys)
	return nil
}

// itemFS returns the newest complete snapshot of an item, keeping the
// last few opened.
func (s *Server) itemFS(ctx context.Context, id [16]byte) (*archive.ItemFS, error) {
	fsys, err := archive.OpenItemCached(ctx, s.n, id, func(item [16]byte) *archive.ItemFS {
		s.arch.mu.Lock()
		defer s.arch.mu.Unlock()
		return s.arch.items[item]
	})
	if err != nil {
		return nil, err
	}
	s.arch.mu.Lock()
	defer s.arch.mu.Unlock()
	if s.arch.items == nil || len(s.arch.items) >= 8 {
		s.arch.items = map[[16]byte]*archive.ItemFS{}
	}
	s.arch.items[id] = fsys
	return fsys, nil
}

type proposalsData struct {
	Open     []proposalView
	Decided  []proposalView
	Settings archive.Settings
	MaxBytes int64
}

type proposalView struct {
	archive.Proposal
	Endorsed    bool // by the member looking
	CanEndorse  bool
	CanAdopt    bool
	CanWithdraw bool
	CSRF        string // for the forms
}

// proposalsPage lists proposals, with the forms to endorse, adopt and
// propose.
func (s *Server) proposalsPage(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	ps, err := archive.Proposals(ctx, s.n, "")
	if err != nil {
		return err
	}
	set, err := archive.GetSettings(ctx, s.n)
	if err != nil {
		return err
	}
	d := &proposalsData{Settings: set, MaxBytes: s.archiveUploadLimit()}
	for _, p := range ps {
		v := viewOf(p, stateOf(r), set)
		if p.State != archive.StateOpen {
			if len(d.Decided) < 50 {
				d.Decided = append(d.Decided, v)
			}
			continue
		}
		d.Open = append(d.Open, v)
	}
	s.render(w, r, http.StatusOK, "archive_proposals", "Proposals", d)
	return nil
}

// viewOf says what the member looking may do with a proposal.
func viewOf(p archive.Proposal, st *state, set archive.Settings) proposalView {
	acct := st.acct
	v := proposalView{Proposal: p, CSRF: st.csrf}
	for _, e := range p.Endorsers {
		v.Endorsed = v.Endorsed || e.User == acct.User
	}
	if p.State == archive.StateOpen {
		v.CanEndorse = !v.Endorsed && p.Proposer != acct.User
		v.CanAdopt = p.Needed == 0 && set.Adopt != archive.AdoptAuto && (acct.Admin() || set.Adopt == archive.AdoptByMembers)
		v.CanWithdraw = p.Proposer == acct.User || acct.Admin()
	}
	return v
}

func member(a *account) archive.Member { return archive.Member{Name: a.User, Admin: a.Admin()} }

// proposalAction endorses, adopts or withdraws a proposal.
func (s *Server) proposalAction(w http.ResponseWriter, r *http.Request) error {
	ctx, acct := r.Context(), stateOf(r).acct
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err != nil {
		return errNotFound
	}
	by := member(acct)
	ok := "saved"
	switch mux.Vars(r)["action"] {
	case "endorse":
		var a *archive.Adoption
		if _, a, err = archive.Endorse(ctx, s.n, by, id); a != nil {
			ok = "adopted"
		} else {
			ok = "endorsed"
		}
	case "adopt":
		_, err = archive.Adopt(ctx, s.n, by, id)
		ok = "adopted"
	case "withdraw":
		err = archive.Withdraw(ctx, s.n, by, id)
	}
	if err != nil {
		return archiveError(err)
	}
	return redirect(w, r, "/archive/proposals?ok="+ok)
}

// archiveError shows the practice's refusals to the member.
func archiveError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "archive: ")
	switch {
	case errors.Is(err, archive.ErrNoProposal):
		return errNotFound
	case errors.Is(err, archive.ErrNotAllowed):
		return &httpError{status: http.StatusForbidden, msg: upperFirst(strings.TrimPrefix(msg, "not allowed: ")) + "."}
	case errors.Is(err, archive.ErrDecided), errors.Is(err, archive.ErrThreshold), errors.Is(err, archive.ErrUnsafeArchive):
		return &httpError{status: http.StatusConflict, msg: upperFirst(msg) + "."}
	}
	return err
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// archiveSettings changes the community's adoption rules (admins).
func (s *Server) archiveSettings(w http.ResponseWriter, r *http.Request) error {
	f, err := s.readForm(r, "")
	if err != nil {
		return err
	}
	t, err := strconv.Atoi(f.values["threshold"])
	if err != nil {
		return &httpError{status: http.StatusBadRequest, msg: "The threshold is a number of endorsements."}
	}
	if err := archive.SetSettings(r.Context(), s.n, archive.Settings{Threshold: t, Adopt: f.values["adopt"]}); err != nil {
		return &httpError{status: http.StatusBadRequest, msg: upperFirst(strings.TrimPrefix(err.Error(), "archive: ")) + "."}
	}
	return redirect(w, r, "/archive/proposals?ok=saved")
}

type historyData struct {
	Events []archive.Event
}

func (s *Server) archiveHistoryPage(w http.ResponseWriter, r *http.Request) error {
	h, err := archive.History(r.Context(), s.n, 200)
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, "archive_history", "Archive history", &historyData{Events: h})
	return nil
}

// archiveUploadLimit bounds one proposal's upload.
func (s *Server) archiveUploadLimit() int64 {
	return min(s.opts.MaxArchiveUpload, archive.DefaultUnpackLimits.MaxBytes)
}

// propose takes a proposal from an upload: files, a folder (the browser
// sends each file's path inside it), or one .zip/.tar/.tar.gz, unpacked
// under the archive's safety rules. Everything is staged in a fresh
// folder under the node's data directory, written through an os.Root;
// the folder is removed whatever happens.
func (s *Server) propose(w http.ResponseWriter, r *http.Request) error {
	ctx, acct := r.Context(), stateOf(r).acct
	parts := stateOf(r).parts
	if parts == nil {
		return &httpError{status: http.StatusBadRequest, msg: "Choose files, a folder or a .zip or .tar to propose."}
	}
	if err := os.MkdirAll(filepath.Join(s.n.Dir(), "archive"), 0o700); err != nil {
		return err
	}
	s.removeStaleUploads()
	stage, err := os.MkdirTemp(filepath.Join(s.n.Dir(), "archive"), "upload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	tree := filepath.Join(stage, "tree")
	if err := os.Mkdir(tree, 0o700); err != nil {
		return err
	}
	root, err := os.OpenRoot(tree)
	if err != nil {
		return err
	}
	defer root.Close()
	lim := archive.UnpackLimits{MaxEntries: archive.DefaultUnpackLimits.MaxEntries, MaxBytes: s.archiveUploadLimit()}
	values := map[string]string{}
	var names []string
	var total int64
	for {
		p, err := parts.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if maxBytesError(err) {
				return &httpError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("That is too large: the limit is %s.", formatSize(lim.MaxBytes))}
			}
			return &httpError{status: http.StatusBadRequest, msg: "Malformed form."}
		}
		name, filename := partNames(p.Header.Get("Content-Disposition"))
		if filename == "" {
			b, err := io.ReadAll(io.LimitReader(p, maxFormBody+1))
			if err != nil || len(b) > maxFormBody {
				return &httpError{status: http.StatusRequestEntityTooLarge, msg: "A field of this form is too long."}
			}
			values[name] = string(b)
			continue
		}
		if name != "files" {
			continue
		}
		rel := strings.TrimPrefix(filename, "./")
		if len(names) >= lim.MaxEntries {
			return &httpError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("That is too many files: the limit is %d.", lim.MaxEntries)}
		}
		if err := stageFile(root, rel, p, &total, lim.MaxBytes); err != nil {
			return err
		}
		names = append(names, rel)
	}
	if len(names) == 0 {
		return &httpError{status: http.StatusBadRequest, msg: "Choose files, a folder or a .zip or .tar to propose."}
	}
	src := tree
	if len(names) == 1 && archive.IsPackedName(names[0]) && values["unpack"] != "" {
		if src, err = unpackStaged(stage, tree, names[0], lim); err != nil {
			return err
		}
	}
	meta := archive.Meta{Title: strings.TrimSpace(values["title"]), Description: strings.TrimSpace(values["description"]),
		Lang: strings.TrimSpace(values["lang"]), Source: strings.TrimSpace(values["source"])}
	for t := range strings.SplitSeq(values["tags"], ",") {
		if t = strings.TrimSpace(t); t != "" {
			meta.Tags = append(meta.Tags, t)
		}
	}
	if meta.Title == "" {
		return &httpError{status: http.StatusBadRequest, msg: "A proposal needs a title."}
	}
	if _, _, err := archive.Propose(ctx, s.n, member(acct), src, nil, meta); err != nil {
		var le *bundle.LimitError
		if errors.As(err, &le) || strings.Contains(err.Error(), "path") {
			msg := strings.ReplaceAll(strings.TrimPrefix(err.Error(), "archive: "), src, "the upload") // no server paths
			return &httpError{status: http.StatusBadRequest, msg: "Refused: " + msg + "."}
		}
		return archiveError(err)
	}
	return redirect(w, r, "/archive/proposals?ok=proposed")
}

// staleUpload is the age past which a staging folder is left from a
// crash (an upload bounded by DefaultMaxArchiveUpload takes less, even
// at 64 kbit/s).
const staleUpload = 24 * time.Hour

// removeStaleUploads removes the staging folders a killed server left.
func (s *Server) removeStaleUploads() {
	dirs, _ := filepath.Glob(filepath.Join(s.n.Dir(), "archive", "upload-*"))
	for _, d := range dirs {
		if fi, err := os.Lstat(d); err == nil && fi.IsDir() && s.now().Sub(fi.ModTime()) > staleUpload {
			os.RemoveAll(d)
		}
	}
}

// stageFile writes one uploaded file at rel (a path inside the upload's
// folder, checked against the archive's path rules) through root.
func stageFile(root *os.Root, rel string, r io.Reader, total *int64, limit int64) error {
	if err := validUploadPath(rel); err != nil {
		return err
	}
	if d := path.Dir(rel); d != "." {
		if err := root.MkdirAll(d, 0o700); err != nil {
			return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf("Refused: %q cannot be made here.", rel)}
		}
	}
	f, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf("Refused: %q was sent twice or cannot be made here.", rel)}
	}
	n, err := io.Copy(f, io.LimitReader(r, limit-*total+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	*total += n
	if *total > limit {
		return &httpError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("That is too large: the limit is %s.", formatSize(limit))}
	}
	if err != nil {
		if maxBytesError(err) {
			return &httpError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("That is too large: the limit is %s.", formatSize(limit))}
		}
		return err
	}
	return nil
}

func validUploadPath(rel string) error {
	if !validViewPath(rel) || strings.HasPrefix(rel, "/") {
		return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf("Refused: %q leaves the item's root.", rel)}
	}
	if err := bundle.ValidArchivePath(rel); err != nil {
		return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf("Refused: %q is not a name an archive can hold (%v).", rel, err)}
	}
	return nil
}

// unpackStaged unpacks the one uploaded archive into a folder next to
// the upload, and returns that folder.
func unpackStaged(stage, tree, name string, lim archive.UnpackLimits) (string, error) {
	out := filepath.Join(stage, "unpacked")
	if err := os.Mkdir(out, 0o700); err != nil {
		return "", err
	}
	root, err := os.OpenRoot(out)
	if err != nil {
		return "", err
	}
	defer root.Close()
	f, err := os.Open(filepath.Join(tree, filepath.FromSlash(name)))
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := archive.Unpack(name, f, root, lim); err != nil {
		var ue *archive.UnsafeError
		if errors.As(err, &ue) {
			return "", &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf("Refused: %s %s.", path.Base(name), strings.TrimPrefix(ue.Error(), "archive: refused: "))}
		}
		return "", err
	}
	return out, nil
}
