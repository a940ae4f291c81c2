package node_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"ferry/node"
)

func TestCardRoundTrip(t *testing.T) {
	id, err := node.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	c := &node.Card{
		Name: "river", ID: id.ID(), Recipient: id.Age.Recipient().String(),
		Location: &node.Location{Lat: 46.2049, Lon: 6.1432}, Addrs: []string{"192.0.2.7:7770", "[2001:db8::1]:7770"},
		Issued: time.Date(2026, 11, 26, 1, 2, 3, 0, time.UTC),
	}
	text, err := node.SignCard(c, id.Sign)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text, "\n") {
		t.Fatalf("card is not one line: %q", text)
	}
	got, err := node.ParseCard("  " + text + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "river" || got.ID != id.ID() || got.Recipient != c.Recipient || len(got.Addrs) != 2 ||
		got.Location.Lat != 46.20 || got.Location.Lon != 6.14 || !got.Issued.Equal(c.Issued) {
		t.Fatalf("parsed %+v from %q", got, text)
	}
}

func TestCardTamperingIsRefused(t *testing.T) {
	id, _ := node.GenerateIdentity()
	other, _ := node.GenerateIdentity()
	c := &node.Card{Name: "river", ID: id.ID(), Recipient: id.Age.Recipient().String(), Issued: time.Now()}
	text, err := node.SignCard(c, id.Sign)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"renamed":       strings.Replace(text, "name=river", "name=rivet", 1),
		"other age key": strings.Replace(text, c.Recipient, other.Age.Recipient().String(), 1),
		"extra field":   strings.Replace(text, " sig=", " addr=203.0.113.9:1 sig=", 1),
		"no signature":  text[:strings.Index(text, " sig=")],
		"not a card":    "hello",
		"empty":         "",
	}
	for name, s := range cases {
		if _, err := node.ParseCard(s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := node.ParseCard(cases["renamed"]); !errors.Is(err, node.ErrCardSignature) {
		t.Errorf("renamed card: got %v, want ErrCardSignature", err)
	}
	if _, err := node.SignCard(c, other.Sign); err == nil {
		t.Error("signing a card with another node's key worked")
	}
}

func TestParseAddress(t *testing.T) {
	for _, s := range []string{"anna@river", "a.b_c-d@north-2"} {
		if _, err := node.ParseAddress(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range []string{"anna", "@river", "anna@", "Anna@river", "anna@river@x", "an na@river", "anna@ri/ver"} {
		if _, err := node.ParseAddress(s); err == nil {
			t.Errorf("%q: accepted", s)
		}
	}
}
