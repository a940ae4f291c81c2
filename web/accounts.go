package web

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"ferry/node"
)

// Roles.
const (
	roleAdmin  = "admin"
	roleMember = "member"
)

// maxDisplay bounds a display name, in bytes.
const maxDisplay = 64

var (
	errNoAccount   = errors.New("no such account")
	errBadLogin    = errors.New("wrong user name or password")
	errInactive    = errors.New("this account is deactivated: ask an admin")
	errLastAdmin   = errors.New("this is the last active admin: make another admin first")
	errNameTaken   = errors.New("that user name is taken")
	errBadUserName = errors.New("a user name is 1-32 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit")
)

// account is a member's login to the web inbox: a user of the node.
type account struct {
	User    string
	Display string
	Role    string
	Active  bool
	Quota   int64 // bytes; 0: the server's default
	Created time.Time
}

func (a *account) Admin() bool { return a.Role == roleAdmin }

const accountCols = `user, display, role, active, COALESCE(quota, 0), created_at`

func scanAccount(sc interface{ Scan(...any) error }) (*account, error) {
	var a account
	var created int64
	if err := sc.Scan(&a.User, &a.Display, &a.Role, &a.Active, &a.Quota, &created); err != nil {
		return nil, err
	}
	a.Created = time.UnixMilli(created)
	return &a, nil
}

func (s *Server) account(ctx context.Context, user string) (*account, error) {
	a, err := scanAccount(s.accountStmt.QueryRowContext(ctx, user))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoAccount
	}
	return a, err
}

func (s *Server) accounts(ctx context.Context) ([]*account, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+accountCols+` FROM web_accounts ORDER BY user`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// displayNames maps local user names to display names. Pages ask for it
// every time, accounts change seldom and only through this server: it is
// cached until forgetNames.
func (s *Server) displayNames(ctx context.Context) (map[string]string, error) {
	if m := s.names.Load(); m != nil {
		return *m, nil
	}
	m, err := s.loadNames(ctx)
	if err != nil {
		return nil, err
	}
	s.names.Store(&m)
	return m, nil
}

// forgetNames drops the cached display names after an account changed.
func (s *Server) forgetNames() { s.names.Store(nil) }

func (s *Server) loadNames(ctx context.Context) (map[string]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT user, display FROM web_accounts`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := map[string]string{}
	for rows.Next() {
		var u, d string
		if err := rows.Scan(&u, &d); err != nil {
			return nil, err
		}
		m[u] = d
	}
	return m, rows.Err()
}

// createAccount makes a new user of the node with an account, and runs
// also (redeeming the code that allowed it) in the same transaction.
func (s *Server) createAccount(ctx context.Context, user, display, role, pw string, also func(tx *sql.Tx) error) error {
	if !node.ValidUser(user) {
		return errBadUserName
	}
	hash, err := hashPassword(pw)
	if err != nil {
		return err
	}
	err = s.n.AddUserWith(ctx, user, func(tx *sql.Tx) error {
		if err := insertAccount(ctx, tx, user, display, role, hash, s.now()); err != nil {
			return err
		}
		return also(tx)
	})
	s.forgetNames()
	if errors.Is(err, node.ErrUserExists) {
		return errNameTaken
	}
	return err
}

func insertAccount(ctx context.Context, tx *sql.Tx, user, display, role, hash string, now time.Time) error {
	display = node.CleanLabel(display, maxDisplay)
	if display == "" {
		display = user
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO web_accounts (user, display, role, pass, active, created_at)
		VALUES (?, ?, ?, ?, 1, ?)`, user, display, role, hash, now.UnixMilli())
	return err
}

// authenticate checks a user name and password. A wrong name and a wrong
// password take the same time and give the same error.
func (s *Server) authenticate(ctx context.Context, user, pw string) (*account, error) {
	var hash string
	err := s.db.QueryRowContext(ctx, `SELECT pass FROM web_accounts WHERE user = ?`, user).Scan(&hash)
	if errors.Is(err, sql.ErrNoRows) {
		checkPassword(dummyHash(), pw)
		return nil, errBadLogin
	}
	if err != nil {
		return nil, err
	}
	ok, err := checkPassword(hash, pw)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errBadLogin
	}
	a, err := s.account(ctx, user)
	if err != nil {
		return nil, err
	}
	if !a.Active {
		return nil, errInactive
	}
	return a, nil
}

// setPassword sets a new password and ends every session of the account.
func (s *Server) setPassword(ctx context.Context, tx *sql.Tx, user, pw string) error {
	hash, err := hashPassword(pw)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE web_accounts SET pass = ? WHERE user = ?`, hash, user); err != nil {
		return err
	}
	return endSessions(ctx, tx, user)
}

// setActive activates or deactivates an account; deactivation ends its
// sessions. The last active admin cannot be deactivated.
func (s *Server) setActive(ctx context.Context, user string, active bool) error {
	return s.n.Update(ctx, func(tx *sql.Tx) error {
		if !active {
			if err := keepAnAdmin(ctx, tx, user); err != nil {
				return err
			}
			if err := endSessions(ctx, tx, user); err != nil {
				return err
			}
		}
		return updateAccount(ctx, tx, `active = ?`, active, user)
	})
}

// setRole makes an account an admin or a member.
func (s *Server) setRole(ctx context.Context, user, role string) error {
	return s.n.Update(ctx, func(tx *sql.Tx) error {
		if role != roleAdmin {
			if err := keepAnAdmin(ctx, tx, user); err != nil {
				return err
			}
		}
		return updateAccount(ctx, tx, `role = ?`, role, user)
	})
}

func (s *Server) setDisplay(ctx context.Context, user, display string) error {
	display = node.CleanLabel(display, maxDisplay)
	if display == "" {
		display = user
	}
	defer s.forgetNames()
	return s.n.Update(ctx, func(tx *sql.Tx) error { return updateAccount(ctx, tx, `display = ?`, display, user) })
}

func updateAccount(ctx context.Context, tx *sql.Tx, set string, v any, user string) error {
	res, err := tx.ExecContext(ctx, `UPDATE web_accounts SET `+set+` WHERE user = ?`, v, user)
	if err != nil {
		return err
	}
	if k, _ := res.RowsAffected(); k == 0 {
		return errNoAccount
	}
	return nil
}

// keepAnAdmin refuses to take the admin role or access away from user if
// no other active admin would remain.
func keepAnAdmin(ctx context.Context, tx *sql.Tx, user string) error {
	var others int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM web_accounts WHERE role = 'admin' AND active = 1 AND user != ?`, user).Scan(&others); err != nil {
		return err
	}
	var role string
	var active bool
	err := tx.QueryRowContext(ctx, `SELECT role, active FROM web_accounts WHERE user = ?`, user).Scan(&role, &active)
	if errors.Is(err, sql.ErrNoRows) {
		return errNoAccount
	}
	if err != nil {
		return err
	}
	if role == roleAdmin && active && others == 0 {
		return errLastAdmin
	}
	return nil
}

// unclaimedUsers lists the node's users that have no account (made with
// 'ferry user add'): an admin gives them one with a reset link.
func (s *Server) unclaimedUsers(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name FROM users WHERE name NOT IN (SELECT user FROM web_accounts) ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

func (s *Server) quota(a *account) int64 {
	if a.Quota > 0 {
		return a.Quota
	}
	return s.opts.Quota
}

func roleOK(role string) error {
	if role != roleAdmin && role != roleMember {
		return fmt.Errorf("unknown role %q", role)
	}
	return nil
}
