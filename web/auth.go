package web

import (
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"ferry/node"
)

// home sends members to their rooms, others to the login page, and the
// very first visitor to setup.
func (s *Server) home(w http.ResponseWriter, r *http.Request) error {
	if stateOf(r).acct != nil {
		return redirect(w, r, "/rooms")
	}
	if open, err := s.setupOpen(r.Context()); err != nil {
		return err
	} else if open {
		return redirect(w, r, "/setup")
	}
	return redirect(w, r, "/login")
}

type loginData struct {
	User  string
	Next  string
	Error string
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) error {
	if stateOf(r).acct != nil {
		return redirect(w, r, safeNext(r.URL.Query().Get("next")))
	}
	s.render(w, r, http.StatusOK, "login", "Log in", &loginData{Next: safeNext(r.URL.Query().Get("next"))})
	return nil
}

// login checks a password. A client that failed too often must wait,
// whatever account it tries; other clients are not slowed.
func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	user := strings.ToLower(strings.TrimSpace(r.PostFormValue("user")))
	d := &loginData{User: user, Next: safeNext(r.PostFormValue("next"))}
	client := clientKey(r)
	if wait := s.limiter.wait(client); wait > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds()+1)))
		d.Error = fmt.Sprintf("Too many failed attempts from this device. Wait %s and try again.", roundWait(wait))
		s.render(w, r, http.StatusTooManyRequests, "login", "Log in", d)
		return nil
	}
	a, err := s.authenticate(r.Context(), user, r.PostFormValue("password"))
	if errors.Is(err, errBadLogin) || errors.Is(err, errInactive) {
		s.limiter.fail(client)
		s.log.Info("failed login", "user", user, "client", client)
		d.Error = err.Error()
		s.render(w, r, http.StatusUnauthorized, "login", "Log in", d)
		return nil
	}
	if err != nil {
		return err
	}
	s.limiter.ok(client)
	if err := s.startSession(r.Context(), w, r, a.User, nil); err != nil {
		return err
	}
	return redirect(w, r, d.Next)
}

func roundWait(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%d seconds", int(d.Seconds()+0.999))
	}
	return fmt.Sprintf("%d minutes", int(d.Minutes()+0.999))
}

// safeNext keeps a post-login redirect on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.ContainsAny(next, "\r\n") {
		return "/rooms"
	}
	return next
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) error {
	if err := s.endSession(r.Context(), w, stateOf(r).sess); err != nil {
		return err
	}
	return redirect(w, r, "/login")
}

// newAccountData fills the forms that make an account: setup, invites
// and resets.
type newAccountData struct {
	Code    string
	User    string
	Display string
	Fixed   bool // the user name is given (a reset)
	Error   string
	Role    string
}

func (s *Server) setupPage(w http.ResponseWriter, r *http.Request) error {
	if open, err := s.setupOpen(r.Context()); err != nil || !open {
		return errors.Join(err, errSetupDone)
	}
	s.render(w, r, http.StatusOK, "setup", "Setup", &newAccountData{})
	return nil
}

var errSetupDone = &httpError{status: http.StatusNotFound, msg: "Setup is done: log in instead."}

// setup makes the first admin, with the code printed on the console.
// Setup then closes for good.
func (s *Server) setup(w http.ResponseWriter, r *http.Request) error {
	if open, err := s.setupOpen(r.Context()); err != nil || !open {
		return errors.Join(err, errSetupDone)
	}
	d := formAccount(r)
	client := clientKey(r)
	if wait := s.limiter.wait(client); wait > 0 {
		d.Error = fmt.Sprintf("Too many wrong codes from this device. Wait %s.", roundWait(wait))
		s.render(w, r, http.StatusTooManyRequests, "setup", "Set up", d)
		return nil
	}
	err := s.makeAccount(w, r, d, roleAdmin, func(tx *sql.Tx) error {
		if _, err := s.useCode(r.Context(), tx, codeSetup, d.Code, d.User); err != nil {
			return err
		}
		_, err := tx.ExecContext(r.Context(), `INSERT INTO meta (key, value) VALUES ('web_setup_done', ?)`, s.now().UTC().Format(time.RFC3339))
		return err
	})
	if errors.Is(err, errBadCode) {
		s.limiter.fail(client)
	}
	if err != nil {
		return s.formError(w, r, "setup", "Set up", d, err)
	}
	s.limiter.ok(client)
	s.log.Info("setup done: first admin created", "user", d.User)
	if _, err := s.n.CreateRoom(r.Context(), "general", "General", "Everyone in "+s.n.Name(), d.User); err != nil && !errors.Is(err, node.ErrRoomExists) {
		return err
	}
	return redirect(w, r, "/admin?ok=welcome")
}

func formAccount(r *http.Request) *newAccountData {
	return &newAccountData{
		Code:    strings.TrimSpace(r.PostFormValue("code")),
		User:    strings.ToLower(strings.TrimSpace(r.PostFormValue("user"))),
		Display: r.PostFormValue("display"),
	}
}

// makeAccount checks the password fields, creates the account with also
// in its transaction, and logs the new account in.
func (s *Server) makeAccount(w http.ResponseWriter, r *http.Request, d *newAccountData, role string, also func(tx *sql.Tx) error) error {
	pw := r.PostFormValue("password")
	if err := checkNewPassword(pw, r.PostFormValue("confirm")); err != nil {
		return &httpError{status: http.StatusBadRequest, msg: capitalize(err.Error()) + "."}
	}
	if err := s.createAccount(r.Context(), d.User, d.Display, role, pw, also); err != nil {
		return err
	}
	s.hub.bump()
	return s.startSession(r.Context(), w, r, d.User, nil)
}

// formError shows a form again with what was wrong, or fails the request
// for an error a person cannot fix in the form.
func (s *Server) formError(w http.ResponseWriter, r *http.Request, name, title string, d *newAccountData, err error) error {
	var he *httpError
	switch {
	case errors.Is(err, errBadCode):
		d.Error = capitalize(err.Error()) + "."
		s.render(w, r, http.StatusForbidden, name, title, d)
	case errors.Is(err, errNameTaken), errors.Is(err, errBadUserName):
		d.Error = capitalize(err.Error()) + "."
		s.render(w, r, http.StatusBadRequest, name, title, d)
	case errors.As(err, &he) && he.status < 500:
		d.Error = he.msg
		s.render(w, r, he.status, name, title, d)
	default:
		return err
	}
	return nil
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (s *Server) invitePage(w http.ResponseWriter, r *http.Request) error {
	code := mux.Vars(r)["code"]
	c, err := s.peekCode(r.Context(), s.db, codeInvite, code)
	if err != nil {
		return &httpError{status: http.StatusNotFound, msg: "This invitation is wrong, used or expired: ask for a new one."}
	}
	s.render(w, r, http.StatusOK, "invite", "Join "+s.n.Name(), &newAccountData{Code: normalizeCode(code), Role: c.Role})
	return nil
}

// acceptInvite makes a member (or admin) account with an invite code,
// which is then used up.
func (s *Server) acceptInvite(w http.ResponseWriter, r *http.Request) error {
	d := formAccount(r)
	d.Code = mux.Vars(r)["code"]
	c, err := s.peekCode(r.Context(), s.db, codeInvite, d.Code)
	if err != nil {
		return &httpError{status: http.StatusNotFound, msg: "This invitation is wrong, used or expired: ask for a new one."}
	}
	d.Role = c.Role
	err = s.makeAccount(w, r, d, c.Role, func(tx *sql.Tx) error {
		_, err := s.useCode(r.Context(), tx, codeInvite, d.Code, d.User)
		return err
	})
	if err != nil {
		return s.formError(w, r, "invite", "Join "+s.n.Name(), d, err)
	}
	return redirect(w, r, "/rooms?ok=welcome")
}

func (s *Server) resetPage(w http.ResponseWriter, r *http.Request) error {
	code := mux.Vars(r)["code"]
	c, err := s.peekCode(r.Context(), s.db, codeReset, code)
	if err != nil {
		return &httpError{status: http.StatusNotFound, msg: "This reset link is wrong, used or expired: ask an admin for a new one."}
	}
	s.render(w, r, http.StatusOK, "reset", "Choose a password", &newAccountData{Code: normalizeCode(code), User: c.User, Fixed: true})
	return nil
}

// resetPassword sets a new password with a reset code an admin issued.
// For a user without an account yet (made with 'ferry user add'), it
// makes the account. Every session of the account ends.
func (s *Server) resetPassword(w http.ResponseWriter, r *http.Request) error {
	code := mux.Vars(r)["code"]
	c, err := s.peekCode(r.Context(), s.db, codeReset, code)
	if err != nil {
		return &httpError{status: http.StatusNotFound, msg: "This reset link is wrong, used or expired: ask an admin for a new one."}
	}
	d := &newAccountData{Code: normalizeCode(code), User: c.User, Fixed: true}
	pw := r.PostFormValue("password")
	if err := checkNewPassword(pw, r.PostFormValue("confirm")); err != nil {
		d.Error = capitalize(err.Error()) + "."
		s.render(w, r, http.StatusBadRequest, "reset", "Choose a password", d)
		return nil
	}
	hash, err := hashPassword(pw)
	if err != nil {
		return err
	}
	ctx := r.Context()
	err = s.n.Update(ctx, func(tx *sql.Tx) error {
		if _, err := s.useCode(ctx, tx, codeReset, code, c.User); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE web_accounts SET pass = ? WHERE user = ?`, hash, c.User)
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k == 0 {
			if err := insertAccount(ctx, tx, c.User, c.User, roleMember, hash, s.now()); err != nil {
				return err
			}
		}
		return endSessions(ctx, tx, c.User)
	})
	s.forgetNames()
	if err != nil {
		return s.formError(w, r, "reset", "Choose a password", d, err)
	}
	if err := s.startSession(ctx, w, r, c.User, nil); err != nil {
		return err
	}
	return redirect(w, r, "/rooms?ok=password")
}
