// Package web is a ferry node's web inbox: the pages a community's
// members use from any browser on the local network, with or without
// JavaScript. It serves rooms, direct messages (here and to other
// communities, with their delivery state), files (and the folders other
// communities sent, package transfer), search, and the admin pages
// (accounts, invites, peers).
//
// Most callers need two things: [New] to make a [Server] for an open
// node, and [Server.Open] to listen. [Server.SetupCode] gives the
// one-time code that lets the first admin in.
//
// # Accounts and sessions
//
// Accounts live in the node's database, in tables of their own (web_*,
// versioned under the meta key 'web_schema'); each is a user of the node.
// Passwords are hashed with argon2id. A session is a random token in an
// HttpOnly, SameSite=Lax cookie; the database keeps only its SHA-256.
// Logging in always makes a new session; logging out ends it; a password
// change, a reset or a deactivation ends every session of the account.
// Failed logins slow down the client that made them (by address), never
// the account, so an attacker cannot lock the real user out.
//
// # Security model
//
// Every route is in one of three mux subrouters (public, members, admins)
// whose middleware checks the session and role. Every request with a body
// is bounded by http.MaxBytesReader; every POST passes
// http.CrossOriginProtection and must carry the session's form token
// (old phones send neither Origin nor Sec-Fetch-Site). Pages are
// html/template with a strict Content-Security-Policy (no inline script
// or style), and files are always served as downloads with nosniff.
// docs/web.md has the whole model.
package web
