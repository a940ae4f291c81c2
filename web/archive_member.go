package web

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"ferry/archive"
	"ferry/node"
)

// ArchiveMember returns who user is in the archive's practice, for the
// command line: a user with a web account has that account's role (a
// deactivated account is refused); a user of the node without one counts
// as an admin, since the command line is run by the node's operator, who
// holds its data directory.
func ArchiveMember(ctx context.Context, n *node.Node, user string) (archive.Member, error) {
	m := archive.Member{Name: user}
	var role string
	var active bool
	err := n.DB().QueryRowContext(ctx, `SELECT role, active FROM web_accounts WHERE user = ?`, user).Scan(&role, &active)
	switch {
	case err == nil:
		if !active {
			return m, fmt.Errorf("%w: %s's account is deactivated", archive.ErrNotAllowed, user)
		}
		m.Admin = role == roleAdmin
		return m, nil
	case errors.Is(err, sql.ErrNoRows) || isNoTable(err):
		m.Admin = true
		return m, nil
	}
	return m, err
}

// isNoTable reports whether err says a table is missing: the web inbox
// never ran on this node.
func isNoTable(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such table")
}
