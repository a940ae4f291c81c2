package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"ferry/node"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// templates holds one parsed template set per page, each with the layout
// and the partials.
type templates struct {
	pages map[string]*template.Template
	// assetVersion changes when the static files do, for cache busting.
	assetVersion string
}

func parseTemplates() (*templates, error) {
	funcs := template.FuncMap{
		"linkify": linkify,
		"marks":   marks,
		"when":    when,
		"iso":     func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"size":    formatSize,
		"roomURL": roomPath,
		"dmURL":   dmPath,
		"shared":  func(r *node.Room, peer string) bool { return slices.Contains(r.Peers, peer) },
		"count":   unreadCount,
		"int64":   func(n uint64) int64 { return int64(min(n, 1<<62)) },
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	t := &templates{pages: map[string]*template.Template{}}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" || strings.HasPrefix(base, "_") {
			continue
		}
		p, err := template.New(base).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/_*.html", n)
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", base, err)
		}
		t.pages[base] = p
	}
	h := sha256.New()
	fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := staticFS.ReadFile(p)
			h.Write(b)
		}
		return nil
	})
	t.assetVersion = hex.EncodeToString(h.Sum(nil))[:10]
	return t, nil
}

// page is what every template gets.
type page struct {
	Title   string
	Node    string
	Section string
	Acct    *account
	CSRF    string
	Live    bool // the page refreshes itself on server-sent events
	Unread  node.Unread
	Flash   string
	Assets  string
	Now     time.Time
	D       any
}

// flashes are the confirmations a redirect may ask for: fixed text, so
// that no one can put words on the page through a link.
var flashes = map[string]string{
	"sent":      "Sent.",
	"posted":    "Posted.",
	"uploaded":  "Uploaded.",
	"saved":     "Saved.",
	"deleted":   "Deleted.",
	"shared":    "Shared into the room.",
	"created":   "Created.",
	"password":  "Password changed. Other devices were logged out.",
	"loggedout": "Logged out everywhere else.",
	"peer":      "Peer added.",
	"approved":  "Approved: it is now a trusted peer.",
	"located":   "Location set and announced.",
	"welcome":   "Welcome! You are logged in.",
	"proposed":  "Proposed. Members can endorse it now.",
	"endorsed":  "Endorsed.",
	"adopted":   "Adopted: it is in the archive and offered to the other communities.",
}

// render writes a page. A logged-in page shows the unread counts.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	st := stateOf(r)
	p := &page{Title: title, Node: s.n.Name(), Section: name, Acct: st.acct, CSRF: st.csrf,
		Flash: flashes[r.URL.Query().Get("ok")], Assets: s.tmpl.assetVersion, Now: s.now(), D: data}
	if v, ok := data.(interface{ live() bool }); ok {
		p.Live = v.live()
	}
	if st.acct != nil {
		p.Unread = s.unreadCounts(r, st.acct.User)
	}
	t := s.tmpl.pages[name]
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		s.log.Error("rendering a page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func (s *Server) unreadCounts(r *http.Request, user string) node.Unread {
	u, err := s.n.Unread(r.Context(), user)
	if err != nil {
		s.log.Warn("counting unread messages", "err", err)
	}
	return u
}

// asHTTPError turns any error into the status and text a person sees.
func asHTTPError(err error) *httpError {
	var he *httpError
	var se *node.SizeError
	switch {
	case errors.As(err, &he):
		return he
	case maxBytesError(err) || errors.As(err, &se):
		return &httpError{status: http.StatusRequestEntityTooLarge, msg: "That is too large for this server."}
	case errors.Is(err, node.ErrQuota):
		return &httpError{status: http.StatusRequestEntityTooLarge, msg: "That would take you over your storage quota: delete some files first."}
	case errors.Is(err, node.ErrUnknownRoom), errors.Is(err, node.ErrNoMessage), errors.Is(err, node.ErrNoFile):
		return errNotFound
	case errors.Is(err, node.ErrUnknownPeer):
		return &httpError{status: http.StatusBadRequest, msg: "This node does not know that community: an admin adds it by its card first."}
	case errors.Is(err, node.ErrUnknownUser):
		return &httpError{status: http.StatusBadRequest, msg: "No one has that name here."}
	case errors.Is(err, node.ErrFileExists), errors.Is(err, node.ErrRoomExists), errors.Is(err, node.ErrUserExists):
		return &httpError{status: http.StatusConflict, msg: "That name is taken already."}
	case errors.Is(err, node.ErrNotInConversation), errors.Is(err, node.ErrRemoteAttachment):
		return &httpError{status: http.StatusBadRequest, msg: strings.TrimPrefix(err.Error(), "node: ")}
	}
	return &httpError{status: http.StatusInternalServerError, msg: "Something went wrong on the server. Try again; if it keeps happening, tell an admin."}
}

// urlRE finds http and https links in text. Nothing else becomes a link:
// a "javascript:" URL stays text.
var urlRE = regexp.MustCompile(`https?://[^\s<>"']+[^\s<>"'.,;:!?)\]]`)

// linkify escapes text and turns its http(s) links into links that open
// in a new tab without a referrer.
func linkify(s string) template.HTML {
	var b strings.Builder
	last := 0
	for _, m := range urlRE.FindAllStringIndex(s, -1) {
		b.WriteString(template.HTMLEscapeString(s[last:m[0]]))
		u := s[m[0]:m[1]]
		if pu, err := url.Parse(u); err == nil && (pu.Scheme == "http" || pu.Scheme == "https") && pu.Host != "" {
			fmt.Fprintf(&b, `<a href="%s" rel="noopener noreferrer nofollow" target="_blank">%s</a>`,
				template.HTMLEscapeString(pu.String()), template.HTMLEscapeString(u))
		} else {
			b.WriteString(template.HTMLEscapeString(u))
		}
		last = m[1]
	}
	b.WriteString(template.HTMLEscapeString(s[last:]))
	return template.HTML(b.String())
}

// marks escapes a search snippet and highlights its matches.
func marks(s string) template.HTML {
	var b strings.Builder
	for i, part := range strings.Split(s, node.MatchStart) {
		if i == 0 {
			b.WriteString(template.HTMLEscapeString(strings.ReplaceAll(part, node.MatchEnd, "")))
			continue
		}
		hit, rest, _ := strings.Cut(part, node.MatchEnd)
		b.WriteString("<mark>" + template.HTMLEscapeString(hit) + "</mark>")
		b.WriteString(template.HTMLEscapeString(strings.ReplaceAll(rest, node.MatchEnd, "")))
	}
	return template.HTML(b.String())
}

// when shows a time briefly: the time of day today, else the date.
func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	t = t.Local()
	now := time.Now()
	switch {
	case t.Year() == now.Year() && t.YearDay() == now.YearDay():
		return t.Format("15:04")
	case t.Year() == now.Year():
		return t.Format("2 Jan 15:04")
	}
	return t.Format("2 Jan 2006")
}

func formatSize(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
}

// unreadCount shows an unread count: past node.MaxUnread, "20+".
func unreadCount(n int) string {
	if n > node.MaxUnread {
		return strconv.Itoa(node.MaxUnread) + "+"
	}
	return strconv.Itoa(n)
}

func roomPath(name string) string  { return "/rooms/" + url.PathEscape(name) }
func dmPath(a node.Address) string { return "/messages/" + url.PathEscape(a.String()) }
func itoa(i int64) string          { return strconv.FormatInt(i, 10) }

// static serves the embedded assets. A versioned URL (?v=...) may be
// cached for long.
func (s *Server) static() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	files := http.FileServerFS(sub)
	return http.StripPrefix("/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		if r.URL.Query().Get("v") != "" {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "public, max-age=3600")
		}
		files.ServeHTTP(w, r)
	}))
}
