package web

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"strings"
	"time"
)

// One-time codes: the setup code, invites and password resets. A code is
// 16 characters of Crockford's base32 (80 bits) in four groups; the
// database keeps only its SHA-256.
const (
	codeSetup  = "setup"
	codeInvite = "invite"
	codeReset  = "reset"
)

// Default lifetimes.
const (
	setupTTL  = 30 * 24 * time.Hour
	inviteTTL = 7 * 24 * time.Hour
	resetTTL  = 2 * 24 * time.Hour
)

var errBadCode = errors.New("this code is wrong, used or expired")

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

func newCode() string {
	b := make([]byte, 16)
	rand.Read(b)
	var sb strings.Builder
	for i, c := range b {
		if i > 0 && i%4 == 0 {
			sb.WriteByte('-')
		}
		sb.WriteByte(crockford[c&31])
	}
	return sb.String()
}

// normalizeCode reads a code as people type it: any case, with or without
// dashes and spaces, O for 0 and I or L for 1.
func normalizeCode(s string) string {
	s = strings.ToUpper(s)
	s = strings.NewReplacer("-", "", " ", "", "O", "0", "I", "1", "L", "1").Replace(s)
	if len(s) != 16 || strings.Trim(s, crockford) != "" {
		return ""
	}
	return s[0:4] + "-" + s[4:8] + "-" + s[8:12] + "-" + s[12:16]
}

// codeRow is a one-time code as stored.
type codeRow struct {
	Hash      []byte
	Kind      string
	Role      string
	User      string
	CreatedBy string
	Created   time.Time
	Expires   time.Time
}

// issueCode makes a one-time code.
func (s *Server) issueCode(ctx context.Context, tx *sql.Tx, kind, role, user, by string, ttl time.Duration) (string, error) {
	code := newCode()
	now := s.now()
	_, err := tx.ExecContext(ctx, `INSERT INTO web_codes (hash, kind, role, user, created_by, created_at, expires_at)
		VALUES (?, ?, NULLIF(?, ''), NULLIF(?, ''), NULLIF(?, ''), ?, ?)`,
		tokenHash(code), kind, role, user, by, now.UnixMilli(), now.Add(ttl).UnixMilli())
	return code, err
}

// peekCode returns a code that is valid now, without using it.
func (s *Server) peekCode(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, kind, code string) (*codeRow, error) {
	code = normalizeCode(code)
	if code == "" {
		return nil, errBadCode
	}
	c := &codeRow{Hash: tokenHash(code)}
	var created, expires int64
	err := q.QueryRowContext(ctx, `SELECT kind, COALESCE(role, ''), COALESCE(user, ''), COALESCE(created_by, ''), created_at, expires_at
		FROM web_codes WHERE hash = ? AND kind = ? AND used_at IS NULL AND expires_at > ?`, c.Hash, kind, s.now().UnixMilli()).
		Scan(&c.Kind, &c.Role, &c.User, &c.CreatedBy, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errBadCode
	}
	if err != nil {
		return nil, err
	}
	c.Created, c.Expires = time.UnixMilli(created), time.UnixMilli(expires)
	return c, nil
}

// useCode marks a code used, inside the transaction that does what it
// allowed; a code used meanwhile by another request fails here.
func (s *Server) useCode(ctx context.Context, tx *sql.Tx, kind, code, by string) (*codeRow, error) {
	c, err := s.peekCode(ctx, tx, kind, code)
	if err != nil {
		return nil, err
	}
	res, err := tx.ExecContext(ctx, `UPDATE web_codes SET used_by = ?, used_at = ? WHERE hash = ? AND used_at IS NULL`,
		by, s.now().UnixMilli(), c.Hash)
	if err != nil {
		return nil, err
	}
	if k, _ := res.RowsAffected(); k != 1 {
		return nil, errBadCode
	}
	return c, nil
}

// pendingCodes lists the unused, unexpired codes of a kind.
func (s *Server) pendingCodes(ctx context.Context, kind string) ([]codeRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT hash, kind, COALESCE(role, ''), COALESCE(user, ''), COALESCE(created_by, ''), created_at, expires_at
		FROM web_codes WHERE kind = ? AND used_at IS NULL AND expires_at > ? ORDER BY created_at DESC`, kind, s.now().UnixMilli())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []codeRow
	for rows.Next() {
		var c codeRow
		var created, expires int64
		if err := rows.Scan(&c.Hash, &c.Kind, &c.Role, &c.User, &c.CreatedBy, &created, &expires); err != nil {
			return nil, err
		}
		c.Created, c.Expires = time.UnixMilli(created), time.UnixMilli(expires)
		out = append(out, c)
	}
	return out, rows.Err()
}

func (s *Server) revokeCode(ctx context.Context, hash []byte) error {
	return s.n.Update(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM web_codes WHERE hash = ? AND used_at IS NULL`, hash)
		return err
	})
}

// setupOpen reports whether the first admin is still to be made.
func (s *Server) setupOpen(ctx context.Context) (bool, error) {
	var done int
	err := s.db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM meta WHERE key = 'web_setup_done') +
		(SELECT COUNT(*) FROM web_accounts WHERE role = 'admin')`).Scan(&done)
	return done == 0, err
}

// SetupCode returns a new one-time setup code while no admin exists, for
// the console: the /setup page asks for it. Earlier codes stop working.
// Once the first admin is made it returns "", and /setup is gone for good.
func (s *Server) SetupCode(ctx context.Context) (string, error) {
	open, err := s.setupOpen(ctx)
	if err != nil || !open {
		return "", err
	}
	var code string
	err = s.n.Update(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM web_codes WHERE kind = 'setup'`); err != nil {
			return err
		}
		code, err = s.issueCode(ctx, tx, codeSetup, roleAdmin, "", "", setupTTL)
		return err
	})
	return code, err
}
