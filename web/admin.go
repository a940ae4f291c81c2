package web

import (
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	qrcode "github.com/skip2/go-qrcode"

	"ferry/carriers"
	"ferry/lora"
	"ferry/node"
	"ferry/usb"
)

type adminData struct {
	Accounts  []*account
	Unclaimed []string
	Invites   []codeRow
	Usage     map[string]int64
	Me        string
	Error     string
}

func (s *Server) adminPage(w http.ResponseWriter, r *http.Request) error {
	return s.showAdmin(w, r, http.StatusOK, "")
}

func (s *Server) showAdmin(w http.ResponseWriter, r *http.Request, status int, msg string) error {
	ctx := r.Context()
	d := &adminData{Me: stateOf(r).acct.User, Error: msg, Usage: map[string]int64{}}
	var err error
	if d.Accounts, err = s.accounts(ctx); err != nil {
		return err
	}
	for _, a := range d.Accounts {
		if d.Usage[a.User], err = s.n.Usage(ctx, a.User); err != nil {
			return err
		}
	}
	if d.Unclaimed, err = s.unclaimedUsers(ctx); err != nil {
		return err
	}
	if d.Invites, err = s.pendingCodes(ctx, codeInvite); err != nil {
		return err
	}
	s.render(w, r, status, "admin", "Admin", d)
	return nil
}

// codeData shows a new invite or reset code once: as a link, as text and
// as a QR code of the link. Only its hash is kept.
type codeData struct {
	Kind    string
	User    string
	Role    string
	Code    string
	Link    string
	QR      template.URL
	Expires time.Time
}

func (s *Server) showCode(w http.ResponseWriter, r *http.Request, d *codeData) error {
	d.Link = "http://" + r.Host + "/" + d.Kind + "/" + d.Code
	png, err := qrcode.Encode(d.Link, qrcode.Medium, 256)
	if err != nil {
		return err
	}
	d.QR = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))
	title := "Invitation"
	if d.Kind == codeReset {
		title = "Password reset for " + d.User
	}
	s.render(w, r, http.StatusOK, "code", title, d)
	return nil
}

// createInvite makes a single-use, expiring invite code.
func (s *Server) createInvite(w http.ResponseWriter, r *http.Request) error {
	role := r.PostFormValue("role")
	if err := roleOK(role); err != nil {
		return &httpError{status: http.StatusBadRequest, msg: "Choose member or admin."}
	}
	days, _ := strconv.Atoi(r.PostFormValue("days"))
	ttl := inviteTTL
	if days >= 1 && days <= 90 {
		ttl = time.Duration(days) * 24 * time.Hour
	}
	var code string
	err := s.n.Update(r.Context(), func(tx *sql.Tx) error {
		var err error
		code, err = s.issueCode(r.Context(), tx, codeInvite, role, "", stateOf(r).acct.User, ttl)
		return err
	})
	if err != nil {
		return err
	}
	return s.showCode(w, r, &codeData{Kind: codeInvite, Role: role, Code: code, Expires: s.now().Add(ttl)})
}

func (s *Server) revokeInvite(w http.ResponseWriter, r *http.Request) error {
	h, err := hex.DecodeString(r.PostFormValue("id"))
	if err != nil {
		return errNotFound
	}
	if err := s.revokeCode(r.Context(), h); err != nil {
		return err
	}
	return redirect(w, r, "/admin?ok=deleted")
}

// userAction activates, deactivates, promotes or demotes an account, or
// issues a one-time password reset link (which ends the account's
// sessions when used; for a user without an account, it makes one).
func (s *Server) userAction(w http.ResponseWriter, r *http.Request) error {
	ctx, user := r.Context(), mux.Vars(r)["user"]
	var err error
	switch mux.Vars(r)["action"] {
	case "activate", "deactivate":
		err = s.setActive(ctx, user, mux.Vars(r)["action"] == "activate")
	case "admin", "member":
		err = s.setRole(ctx, user, mux.Vars(r)["action"])
	case "reset":
		var code string
		err = s.n.Update(ctx, func(tx *sql.Tx) error {
			var one int
			if err := tx.QueryRowContext(ctx, `SELECT 1 FROM users WHERE name = ?`, user).Scan(&one); err != nil {
				return errNoAccount
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM web_codes WHERE kind = 'reset' AND user = ? AND used_at IS NULL`, user); err != nil {
				return err
			}
			var err error
			code, err = s.issueCode(ctx, tx, codeReset, "", user, stateOf(r).acct.User, resetTTL)
			return err
		})
		if err == nil {
			return s.showCode(w, r, &codeData{Kind: codeReset, User: user, Code: code, Expires: s.now().Add(resetTTL)})
		}
	}
	switch err {
	case nil:
		return redirect(w, r, "/admin?ok=saved")
	case errNoAccount:
		return errNotFound
	case errLastAdmin:
		return s.showAdmin(w, r, http.StatusConflict, capitalize(err.Error())+".")
	}
	return err
}

type peersData struct {
	Card   string
	Peers  []peerRow
	Sticks *usb.Status
	Radios []lora.Status
	Error  string
	Pasted string
}

// peerRow is a peer as the network page shows it: the node's record and,
// when live links run, theirs.
type peerRow struct {
	node.PeerStatus
	Link *carriers.PeerStats
}

func (s *Server) peersPage(w http.ResponseWriter, r *http.Request) error {
	return s.showPeers(w, r, http.StatusOK, &peersData{})
}

func (s *Server) showPeers(w http.ResponseWriter, r *http.Request, status int, d *peersData) error {
	ctx := r.Context()
	var err error
	if d.Card, err = s.n.Card(nil, nil); err != nil {
		return err
	}
	peers, err := s.n.PeerStatuses(ctx)
	if err != nil {
		return err
	}
	for _, p := range peers {
		row := peerRow{PeerStatus: p}
		if s.opts.Links != nil {
			if st, ok := s.opts.Links.Peer(p.ID); ok {
				row.Link = &st
			}
		}
		d.Peers = append(d.Peers, row)
	}
	if s.opts.Sticks != nil {
		st := s.opts.Sticks.Status()
		d.Sticks = &st
	}
	for _, r := range s.opts.Radios {
		d.Radios = append(d.Radios, r.Status())
	}
	s.render(w, r, status, "peers", "Peers", d)
	return nil
}

// addPeer trusts another community by its card.
func (s *Server) addPeer(w http.ResponseWriter, r *http.Request) error {
	card := strings.TrimSpace(r.PostFormValue("card"))
	if _, err := s.n.AddPeer(r.Context(), card, strings.TrimSpace(r.PostFormValue("as"))); err != nil {
		return s.showPeers(w, r, http.StatusBadRequest, &peersData{Pasted: card,
			Error: "That card was not added: " + strings.TrimPrefix(err.Error(), "node: ")})
	}
	s.hub.bump()
	return redirect(w, r, "/admin/peers?ok=peer")
}

// cardQR is this node's card as a QR code.
func (s *Server) cardQR(w http.ResponseWriter, r *http.Request) error {
	card, err := s.n.Card(nil, nil)
	if err != nil {
		return err
	}
	png, err := qrcode.Encode(card, qrcode.Low, 512)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(png)
	return nil
}

// roomSettings changes a room's title and topic and the peer communities
// it is shared with.
func (s *Server) roomSettings(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	room, err := s.n.Room(ctx, mux.Vars(r)["room"])
	if err != nil {
		return err
	}
	if err := r.ParseForm(); err != nil {
		return err
	}
	if err := s.n.UpdateRoom(ctx, room.Name, r.PostFormValue("title"), r.PostFormValue("topic")); err != nil {
		return err
	}
	peers, err := s.n.Peers(ctx)
	if err != nil {
		return err
	}
	shared := map[string]bool{}
	for _, p := range r.PostForm["share"] {
		shared[p] = true
	}
	for _, p := range peers {
		if shared[p.Name] {
			err = s.n.ShareRoom(ctx, room.Name, p.Name)
		} else {
			err = s.n.UnshareRoom(ctx, room.Name, p.Name)
		}
		if err != nil {
			return err
		}
	}
	s.hub.bump()
	return redirect(w, r, roomPath(room.Name)+"?ok=saved")
}
