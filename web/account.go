package web

import (
	"database/sql"
	"errors"
	"net/http"

	"github.com/gorilla/mux"
)

type accountData struct {
	Sessions []sessionInfo
	Used     int64
	Quota    int64
	Error    string
}

func (s *Server) accountPage(w http.ResponseWriter, r *http.Request) error {
	return s.showAccount(w, r, http.StatusOK, "")
}

func (s *Server) showAccount(w http.ResponseWriter, r *http.Request, status int, msg string) error {
	st := stateOf(r)
	d := &accountData{Quota: s.quota(st.acct), Error: msg}
	var err error
	if d.Sessions, err = s.sessions(r.Context(), st.acct.User, st.sess); err != nil {
		return err
	}
	if d.Used, err = s.n.Usage(r.Context(), st.acct.User); err != nil {
		return err
	}
	s.render(w, r, status, "account", "Your account", d)
	return nil
}

// accountAction changes the display name or the password, or logs out
// every other session. A new password ends every other session too.
func (s *Server) accountAction(w http.ResponseWriter, r *http.Request) error {
	ctx, st := r.Context(), stateOf(r)
	switch mux.Vars(r)["action"] {
	case "display":
		if err := s.setDisplay(ctx, st.acct.User, r.PostFormValue("display")); err != nil {
			return err
		}
		s.hub.bump()
		return redirect(w, r, "/account?ok=saved")
	case "logout-all":
		err := s.n.Update(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `DELETE FROM web_sessions WHERE user = ? AND id != ?`, st.acct.User, st.sess.id)
			return err
		})
		if err != nil {
			return err
		}
		return redirect(w, r, "/account?ok=loggedout")
	}
	if _, err := s.authenticate(ctx, st.acct.User, r.PostFormValue("current")); errors.Is(err, errBadLogin) {
		s.limiter.fail(clientKey(r))
		return s.showAccount(w, r, http.StatusForbidden, "Your current password is not that.")
	} else if err != nil {
		return err
	}
	pw := r.PostFormValue("password")
	if err := checkNewPassword(pw, r.PostFormValue("confirm")); err != nil {
		return s.showAccount(w, r, http.StatusBadRequest, capitalize(err.Error())+".")
	}
	// The new password ends every session; this browser gets a new one.
	err := s.startSession(ctx, w, r, st.acct.User, func(tx *sql.Tx) error {
		return s.setPassword(ctx, tx, st.acct.User, pw)
	})
	if err != nil {
		return err
	}
	return redirect(w, r, "/account?ok=password")
}
