package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"

	"github.com/gorilla/mux"
)

// maxFormBody bounds every request body except uploads.
const maxFormBody = 64 << 10

// contentSecurityPolicy allows only this server's own scripts, styles,
// images and forms, and no framing. Nothing inline: user text that
// escaped html/template still could not run.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// state is what the middleware learned about a request.
type state struct {
	acct *account
	sess *session
	// csrf is the form token the request's forms carry: the session's,
	// or the pre-session cookie's.
	csrf string
	// parts is the rest of a multipart body whose first part, the form
	// token, was read and checked.
	parts *multipart.Reader
}

type stateKey struct{}

func stateOf(r *http.Request) *state {
	if st, ok := r.Context().Value(stateKey{}).(*state); ok {
		return st
	}
	return &state{}
}

// outer wraps every request, matched or not: panics become 500s, every
// response gets the security headers, every body is bounded, and the
// request is logged. At most cap(s.gate) requests run at once (event
// streams and assets aside): the others wait their turn, so that a burst
// of clients cannot open a database connection each and exhaust a Pi's
// memory.
func (s *Server) outer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic serving a request", "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				if !sw.wrote {
					http.Error(sw, "internal error", http.StatusInternalServerError)
				}
			}
			s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "took", s.now().Sub(start))
		}()
		h := sw.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()")
		limit, shown := int64(maxFormBody), s.opts.MaxUpload
		if isMultipart(r) {
			if r.URL.Path == "/archive/proposals" {
				shown = s.archiveUploadLimit()
			}
			limit = shown + maxFormBody
		}
		if r.ContentLength > limit {
			s.fail(sw, r, &httpError{status: http.StatusRequestEntityTooLarge,
				msg: fmt.Sprintf("That is too large: the limit is %s.", formatSize(shown))})
			return
		}
		r.Body = http.MaxBytesReader(sw, r.Body, limit)
		if r.URL.Path != "/events" && !strings.HasPrefix(r.URL.Path, "/static/") {
			select {
			case s.gate <- struct{}{}:
				defer func() { <-s.gate }()
			case <-r.Context().Done():
				return
			}
		}
		next.ServeHTTP(sw, r)
	})
}

// statusWriter records the status for the log. It passes Flush through
// for server-sent events.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// session loads the request's session and account into its state, and
// gives a browser without a session a form token cookie for the login
// and setup forms.
func (s *Server) session(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := &state{}
		r = r.WithContext(s.n.Request(r.Context()))
		sess, acct, err := s.loadSession(r.Context(), r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if sess != nil {
			st.sess, st.acct, st.csrf = sess, acct, sess.csrf
		} else if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == 43 {
			st.csrf = c.Value
		} else if r.Method == http.MethodGet || r.Method == http.MethodHead {
			st.csrf = randomToken()
			http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: st.csrf, Path: "/", HttpOnly: true,
				SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), stateKey{}, st)))
	})
}

// csrf refuses a state-changing request that comes from another site
// (http.CrossOriginProtection reads Sec-Fetch-Site and Origin) or that
// lacks the form token: old browsers send neither header, so the token is
// what protects them. Only upload routes take multipart bodies; their
// first part must be the token, so that nothing of an upload is read
// before the token is checked.
func (s *Server) csrf(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, &httpError{status: http.StatusForbidden, msg: "This form was sent from another site, so it was refused."})
	}))
	return cop.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			next.ServeHTTP(w, r)
			return
		}
		st := stateOf(r)
		var token string
		if isMultipart(r) {
			route := mux.CurrentRoute(r)
			if route == nil || !strings.HasPrefix(route.GetName(), "upload-") {
				s.fail(w, r, &httpError{status: http.StatusUnsupportedMediaType, msg: "This form takes no files."})
				return
			}
			mr, tok, err := firstPart(r)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			token, st.parts = tok, mr
		} else {
			token = r.PostFormValue("csrf")
		}
		if !equalTokens(token, st.csrf) {
			s.fail(w, r, &httpError{status: http.StatusForbidden,
				msg: "This form has expired or did not come from this site. Go back, reload the page and try again."})
			return
		}
		next.ServeHTTP(w, r)
	}))
}

// firstPart reads the form token from the first part of a multipart body
// and returns the reader of the rest.
func firstPart(r *http.Request) (*multipart.Reader, string, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, "", &httpError{status: http.StatusBadRequest, msg: "Malformed form."}
	}
	p, err := mr.NextPart()
	if err != nil || p.FormName() != "csrf" {
		return nil, "", &httpError{status: http.StatusForbidden, msg: "This form has expired. Go back, reload the page and try again."}
	}
	b, err := io.ReadAll(io.LimitReader(p, 100))
	if err != nil {
		return nil, "", err
	}
	return mr, string(b), nil
}

func isMultipart(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "multipart/form-data"
}

// members lets in only logged-in, active accounts: a page sends others to
// the login page, anything else gets 403.
func (s *Server) members(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if stateOf(r).acct == nil {
			if r.Method == http.MethodGet && r.Header.Get("Accept") != "text/event-stream" {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			s.fail(w, r, &httpError{status: http.StatusForbidden, msg: "Log in first."})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// admins lets in only admins.
func (s *Server) admins(next http.Handler) http.Handler {
	return s.members(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !stateOf(r).acct.Admin() {
			s.fail(w, r, &httpError{status: http.StatusForbidden, msg: "Only admins may do this."})
			return
		}
		next.ServeHTTP(w, r)
	}))
}

// errNotFound answers for what does not exist and for what the member
// may not see alike, so that guessing numbers tells nothing.
var errNotFound = &httpError{status: http.StatusNotFound, msg: "There is nothing here, or it is not yours to see."}

// httpError is an error with the status and the sentence a person sees.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// handle adapts a handler that returns an error.
func (s *Server) handle(fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			s.fail(w, r, err)
		}
	})
}

// fail answers with an error page. Errors a person can act on say so;
// others are logged and shown as an internal error.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	he := asHTTPError(err)
	if he.status >= 500 {
		s.log.Error("serving a request", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if r.Method == http.MethodPost && r.Body != nil {
		// Let the client see the answer rather than a reset connection.
		io.CopyN(io.Discard, r.Body, maxFormBody)
	}
	s.render(w, r, he.status, "error", "Error", he.msg)
}

// redirect answers a form with a redirect to a page (post/redirect/get).
func redirect(w http.ResponseWriter, r *http.Request, to string) error {
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

// maxBytesError reports whether err is a body over its MaxBytesReader.
func maxBytesError(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}
