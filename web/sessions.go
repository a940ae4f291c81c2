package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"net/http"
	"time"
)

// Cookies.
const (
	sessionCookie = "ferry_session"
	// csrfCookie holds the form token of a browser that has no session
	// yet (the login, setup, invite and reset forms).
	csrfCookie = "ferry_csrf"
)

// Session timing: a session ends after sessionIdle without use; its last
// use is written at most every sessionTouch, so that reading pages does
// not write to the database each time.
const (
	sessionIdle  = 30 * 24 * time.Hour
	sessionTouch = 10 * time.Minute
)

// session is a logged-in browser.
type session struct {
	id   []byte // SHA-256 of the cookie token
	user string
	csrf string
	seen time.Time
}

// randomToken returns 32 random bytes in URL-safe base64.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

func equalTokens(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// startSession logs user in on this browser: it ends the session the
// browser presented, if any, runs also, and sets a new session (rotation
// at login), all in one transaction.
func (s *Server) startSession(ctx context.Context, w http.ResponseWriter, r *http.Request, user string, also func(tx *sql.Tx) error) error {
	token := randomToken()
	now := s.now()
	err := s.n.Update(ctx, func(tx *sql.Tx) error {
		if c, err := r.Cookie(sessionCookie); err == nil {
			if _, err := tx.ExecContext(ctx, `DELETE FROM web_sessions WHERE id = ?`, tokenHash(c.Value)); err != nil {
				return err
			}
		}
		if also != nil {
			if err := also(tx); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO web_sessions (id, user, csrf, created_at, seen_at, client)
			VALUES (?, ?, ?, ?, ?, ?)`, tokenHash(token), user, randomToken(), now.UnixMilli(), now.UnixMilli(),
			clientLabel(r))
		return err
	})
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: token, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil, MaxAge: int(sessionIdle / time.Second)})
	return nil
}

// loadSession returns the session the request's cookie names and its
// account, or nil when there is none, it expired, or the account is
// deactivated.
func (s *Server) loadSession(ctx context.Context, r *http.Request) (*session, *account, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || len(c.Value) != 43 {
		return nil, nil, nil
	}
	sess := &session{id: tokenHash(c.Value)}
	var seen int64
	err = s.sessionStmt.QueryRowContext(ctx, sess.id).Scan(&sess.user, &sess.csrf, &seen)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	sess.seen = time.UnixMilli(seen)
	now := s.now()
	if now.Sub(sess.seen) > sessionIdle {
		return nil, nil, s.n.Update(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `DELETE FROM web_sessions WHERE id = ?`, sess.id)
			return err
		})
	}
	a, err := s.account(ctx, sess.user)
	if errors.Is(err, errNoAccount) {
		return nil, nil, nil
	}
	if err != nil || !a.Active {
		return nil, nil, err
	}
	if now.Sub(sess.seen) > sessionTouch {
		err := s.n.Update(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE web_sessions SET seen_at = ? WHERE id = ?`, now.UnixMilli(), sess.id)
			return err
		})
		if err != nil {
			return nil, nil, err
		}
	}
	return sess, a, nil
}

// endSession logs this browser out.
func (s *Server) endSession(ctx context.Context, w http.ResponseWriter, sess *session) error {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: -1})
	if sess == nil {
		return nil
	}
	return s.n.Update(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM web_sessions WHERE id = ?`, sess.id)
		return err
	})
}

// endSessions ends every session of an account.
func endSessions(ctx context.Context, tx *sql.Tx, user string) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM web_sessions WHERE user = ?`, user)
	return err
}

// sessionInfo describes a session on the account page.
type sessionInfo struct {
	Client  string
	Created time.Time
	Seen    time.Time
	Current bool
}

func (s *Server) sessions(ctx context.Context, user string, current *session) ([]sessionInfo, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, client, created_at, seen_at FROM web_sessions WHERE user = ? ORDER BY seen_at DESC`, user)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []sessionInfo
	for rows.Next() {
		var id []byte
		var si sessionInfo
		var created, seen int64
		if err := rows.Scan(&id, &si.Client, &created, &seen); err != nil {
			return nil, err
		}
		si.Created, si.Seen = time.UnixMilli(created), time.UnixMilli(seen)
		si.Current = current != nil && string(id) == string(current.id)
		out = append(out, si)
	}
	return out, rows.Err()
}

// clientLabel describes a browser for the account page: its address and
// the start of its user agent.
func clientLabel(r *http.Request) string {
	ua := r.UserAgent()
	if len(ua) > 80 {
		ua = ua[:80]
	}
	return clientKey(r) + " " + ua
}
