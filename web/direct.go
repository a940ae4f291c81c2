package web

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"ferry/node"
)

type conversationsData struct {
	Conversations []conversationView
	Users         []string // local users, for the address field's suggestions
	Peers         []string
	To            string
	Error         string
}

type conversationView struct {
	node.Conversation
	Name string
}

func (d *conversationsData) live() bool { return true }

func (s *Server) conversationsPage(w http.ResponseWriter, r *http.Request) error {
	d, err := s.conversations(r)
	if err != nil {
		return err
	}
	d.To = r.URL.Query().Get("to")
	s.render(w, r, http.StatusOK, "messages", "Messages", d)
	return nil
}

func (s *Server) conversations(r *http.Request) (*conversationsData, error) {
	ctx := r.Context()
	cs, err := s.n.Conversations(ctx, stateOf(r).acct.User)
	if err != nil {
		return nil, err
	}
	names, err := s.displayNames(ctx)
	if err != nil {
		return nil, err
	}
	d := &conversationsData{}
	for _, c := range cs {
		d.Conversations = append(d.Conversations, conversationView{Conversation: c, Name: s.nameOf(c.With, names)})
	}
	accts, err := s.accounts(ctx)
	if err != nil {
		return nil, err
	}
	for _, a := range accts {
		if a.Active {
			d.Users = append(d.Users, a.User)
		}
	}
	peers, err := s.n.Peers(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range peers {
		d.Peers = append(d.Peers, p.Name)
	}
	return d, nil
}

// parseRecipient reads "anna", "anna@river" or "anna@" + this node.
func (s *Server) parseRecipient(to string) (node.Address, bool) {
	to = strings.ToLower(strings.TrimSpace(to))
	if !strings.Contains(to, "@") {
		to += "@" + s.n.Name()
	}
	a, err := node.ParseAddress(to)
	return a, err == nil
}

// startConversation opens the conversation with the address typed.
func (s *Server) startConversation(w http.ResponseWriter, r *http.Request) error {
	to := r.PostFormValue("to")
	a, ok := s.parseRecipient(to)
	if ok {
		if _, err := s.n.DirectConv(r.Context(), a); err == nil {
			return redirect(w, r, dmPath(a))
		}
	}
	d, err := s.conversations(r)
	if err != nil {
		return err
	}
	d.To = to
	d.Error = "Write a name here (anna) or at a community this node knows (anna@river)."
	s.render(w, r, http.StatusBadRequest, "messages", "Messages", d)
	return nil
}

func (s *Server) withAddress(r *http.Request) (*node.Address, error) {
	a, ok := s.parseRecipient(mux.Vars(r)["with"])
	if !ok {
		return nil, &httpError{status: http.StatusNotFound, msg: "That is not an address: write user@community."}
	}
	if _, err := s.n.DirectConv(r.Context(), a); err != nil {
		return nil, err
	}
	if a.Node == s.n.Name() {
		var one int
		if err := s.db.QueryRowContext(r.Context(), `SELECT 1 FROM users WHERE name = ?`, a.User).Scan(&one); err != nil {
			return nil, &httpError{status: http.StatusNotFound, msg: "No one is called " + a.User + " here."}
		}
	}
	return &a, nil
}

func (s *Server) conversationPage(w http.ResponseWriter, r *http.Request) error {
	a, err := s.withAddress(r)
	if err != nil {
		return err
	}
	d := &conversationData{With: a, Action: dmPath(*a)}
	return s.showConversation(w, r, d, http.StatusOK)
}

func (s *Server) sendDirect(w http.ResponseWriter, r *http.Request) error {
	a, err := s.withAddress(r)
	if err != nil {
		return err
	}
	d := &conversationData{With: a, Action: dmPath(*a)}
	return s.post(w, r, d, node.Draft{To: *a})
}

func (s *Server) downloadAttachment(w http.ResponseWriter, r *http.Request) error {
	id, _ := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	a, err := s.n.Attachment(r.Context(), stateOf(r).acct.User, id)
	if err != nil {
		return err
	}
	return s.serveBody(w, r, a.Hash, a.Name, a.Type)
}
