package sim_test

import (
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"ferry/bundle"
	"ferry/carriers"
	"ferry/lora"
	"ferry/lora/emulator"
	"ferry/node"
	"ferry/sim"
)

// chain is the network of acceptance 2: n1 -stick- n2 -LoRa- n3 -stick-
// n4 -LoRa- n5, on synctest's virtual clock.
type chain struct {
	t    *testing.T
	nw   *sim.Network
	n    []*node.Node // n[1]..n[5]
	s12  *sim.Stick
	s34  *sim.Stick
	seed uint64
}

func newChain(t *testing.T) *chain {
	names := []string{"n1", "n2", "n3", "n4", "n5"}
	nw, err := sim.NewNetwork(t.Context(), t.TempDir(), names, sim.Options{Now: time.Now, MessageTTL: 10 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nw.Close() })
	c := &chain{t: t, nw: nw, n: append([]*node.Node{nil}, nw.Nodes...)}
	if c.s12, err = nw.NewStick("s12", 1<<30); err != nil {
		t.Fatal(err)
	}
	if c.s34, err = nw.NewStick("s34", 1<<30); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *chain) plug(s *sim.Stick, i int) {
	c.t.Helper()
	if _, err := c.nw.Plug(c.t.Context(), s, c.n[i]); err != nil {
		c.t.Fatal(err)
	}
	time.Sleep(2 * time.Hour) // the walk to the next community
}

// radio runs one session between n[i] and n[j] over emulated LoRa modems
// (SF7/500 kHz, EU868 10 % sub-band, 5 % random loss).
func (c *chain) radio(i, j int) {
	c.t.Helper()
	c.seed++
	p := lora.Params{SF: 7, Bandwidth: 500000, CR: 1, Frequency: 869_525_000}
	air := emulator.New(emulator.Config{Loss: emulator.Random{P: 0.05}, Seed: c.seed})
	ma, _ := air.Modem("a", p)
	mb, _ := air.Modem("b", p)
	defer ma.Close()
	defer mb.Close()
	mk := func(a, b *node.Node) (carriers.Link, carriers.Link, error) {
		return lora.NewLink(lora.LinkConfig{Modem: ma, Params: p, Budget: lora.NewBudget(lora.EU868Sub10), Initiator: true}),
			lora.NewLink(lora.LinkConfig{Modem: mb, Params: p, Budget: lora.NewBudget(lora.EU868Sub10)}), nil
	}
	if _, _, err := c.nw.Live(c.t.Context(), c.n[i], c.n[j], mk, 0); err != nil {
		c.t.Fatal(err)
	}
	time.Sleep(time.Hour)
}

// forward runs the contacts from n1 to n5, back runs them from n5 to n1.
func (c *chain) forward() {
	c.plug(c.s12, 1)
	c.plug(c.s12, 2)
	c.radio(2, 3)
	c.plug(c.s34, 3)
	c.plug(c.s34, 4)
	c.radio(4, 5)
}

func (c *chain) back() {
	c.radio(4, 5)
	c.plug(c.s34, 4)
	c.plug(c.s34, 3)
	c.radio(2, 3)
	c.plug(c.s12, 2)
	c.plug(c.s12, 1)
}

// bundleOf returns the bundle that carries n1's message with body.
func (c *chain) bundleOf(body string) bundle.ID {
	c.t.Helper()
	var id []byte
	if err := c.n[1].DB().QueryRow(`SELECT bundle FROM messages WHERE body = ?`, body).Scan(&id); err != nil {
		c.t.Fatalf("bundle of %q: %v", body, err)
	}
	return bundle.ID(id)
}

// state returns the state of bundle id at node i, "" if it never saw it.
func (c *chain) state(i int, id bundle.ID) string {
	c.t.Helper()
	var s string
	err := c.n[i].DB().QueryRow(`SELECT state FROM bundles WHERE id = ?`, id[:]).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return ""
	}
	if err != nil {
		c.t.Fatal(err)
	}
	return s
}

func (c *chain) count(i int, q string, args ...any) int {
	c.t.Helper()
	var k int
	if err := c.n[i].DB().QueryRow(q, args...).Scan(&k); err != nil {
		c.t.Fatal(err)
	}
	return k
}

// TestChainDeliversOnceReceiptReturnsExpiredDropped is acceptance 2 of
// issue 9: in the chain n1 -stick- n2 -LoRa- n3 -stick- n4 -LoRa- n5, a
// message from n1 to n5 arrives once and its receipt returns to n1;
// every relay drops the delivered bundle; a message that expires on the
// way is dropped from every store and every stick.
func TestChainDeliversOnceReceiptReturnsExpiredDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newChain(t)
		ctx := t.Context()
		if _, err := c.nw.Send(ctx, "n1", "n5", "hello n5"); err != nil {
			t.Fatal(err)
		}
		c.forward()
		if k := c.count(5, `SELECT COUNT(*) FROM messages WHERE body = 'hello n5' AND state = 'received'`); k != 1 {
			t.Fatalf("n5 holds %d copies of the message after the forward walk", k)
		}
		c.back()
		var st string
		c.n[1].DB().QueryRow(`SELECT state FROM messages WHERE body = 'hello n5'`).Scan(&st)
		if st != "delivered" {
			t.Fatalf("at n1 the message is %q, want delivered (the receipt came back)", st)
		}
		// Walk the chain again: nothing arrives twice.
		c.forward()
		if k := c.count(5, `SELECT COUNT(*) FROM messages WHERE body = 'hello n5'`); k != 1 {
			t.Fatalf("n5 holds %d copies of the message", k)
		}
		id := c.bundleOf("hello n5")
		if s := c.state(5, id); s != "applied" {
			t.Fatalf("at n5 the bundle is %q", s)
		}
		for i := 1; i <= 4; i++ {
			if s := c.state(i, id); s != "delivered" {
				t.Errorf("at n%d the delivered bundle is %q, want delivered (body dropped)", i, s)
			}
		}

		// A message that cannot arrive before it expires: it goes as far
		// as n3, then ten days pass.
		if _, err := c.nw.Send(ctx, "n1", "n5", "too late"); err != nil {
			t.Fatal(err)
		}
		c.plug(c.s12, 1)
		c.plug(c.s12, 2)
		c.radio(2, 3)
		late := c.bundleOf("too late")
		if s := c.state(3, late); s != "carry" {
			t.Fatalf("at n3 the late bundle is %q, want carry", s)
		}
		time.Sleep(10 * 24 * time.Hour)
		c.forward()
		c.back()
		now := time.Now().Unix()
		for i := 1; i <= 5; i++ {
			if k := c.count(i, `SELECT COUNT(*) FROM bundles WHERE state IN ('outbound', 'carry') AND expires != 0 AND expires <= ?`, now); k != 0 {
				t.Errorf("n%d holds %d expired bundles", i, k)
			}
			if s := c.state(i, late); i <= 3 && s != "expired" || i > 3 && s != "" {
				t.Errorf("at n%d the late bundle is %q", i, s)
			}
			spool, _ := filepath.Glob(filepath.Join(c.n[i].Dir(), "spool", "*", late.String()+".bundle"))
			if len(spool) != 0 {
				t.Errorf("n%d's spool still holds the expired bundle", i)
			}
			if k := c.count(i, `SELECT COUNT(*) FROM bundles WHERE state IN ('outbound', 'carry')`); k != 0 {
				t.Errorf("n%d still holds %d bundles for carrying", i, k)
			}
		}
		for _, s := range []*sim.Stick{c.s12, c.s34} {
			bs, err := s.Bundles()
			if err != nil {
				t.Fatal(err)
			}
			if len(bs) != 0 {
				t.Errorf("stick %s still holds %d bundles", s.Name, len(bs))
			}
		}
		var late5 int
		c.n[5].DB().QueryRow(`SELECT COUNT(*) FROM messages WHERE body = 'too late'`).Scan(&late5)
		st = ""
		c.n[1].DB().QueryRow(`SELECT state FROM messages WHERE body = 'too late'`).Scan(&st)
		if late5 != 0 || st != "expired" {
			t.Errorf("the late message: %d at n5, %q at n1 (want 0, expired)", late5, st)
		}
	})
}
