package node

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"

	"ferry/bundle"
)

// cardPrefix opens every node card of version 1.
const cardPrefix = "ferry-card/1"

// ErrCardSignature means a card's signature does not verify.
var ErrCardSignature = errors.New("node: card signature does not verify")

// Card introduces a node to others: one line of signed text that an admin
// copies, prints as a QR code or reads out. It carries the node's name,
// its signing key (its ID) and its age recipient, and optionally a coarse
// location and addresses where it can be reached.
//
//	ferry-card/1 name=north id=<64 hex> age=age1... loc=46.20,6.15 addr=192.0.2.7:7770 at=2026-11-26T01:02:03Z sig=<base64url>
//
// The signature, by the node's key, covers every byte before " sig=".
type Card struct {
	Name      string
	ID        bundle.NodeID
	Recipient string // age X25519 recipient, "age1..."
	Location  *Location
	Addrs     []string
	Issued    time.Time
}

// Location is a coarse position: two decimals of a degree, about a kilometre.
type Location struct {
	Lat, Lon float64
}

var (
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
	addrRE = regexp.MustCompile(`^[A-Za-z0-9.:\[\]_-]{1,253}$`)
)

// ValidName reports whether s is a valid node name: 1 to 32 lowercase
// letters, digits and dashes, starting with a letter or digit.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// body returns the signed part of the card.
func (c *Card) body() (string, error) {
	if !ValidName(c.Name) {
		return "", fmt.Errorf("node: card: bad name %q", c.Name)
	}
	if _, err := age.ParseX25519Recipient(c.Recipient); err != nil {
		return "", fmt.Errorf("node: card: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s name=%s id=%s age=%s", cardPrefix, c.Name, c.ID, c.Recipient)
	if c.Location != nil {
		if err := c.Location.check(); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, " loc=%.2f,%.2f", c.Location.Lat, c.Location.Lon)
	}
	if len(c.Addrs) > 0 {
		for _, a := range c.Addrs {
			if !addrRE.MatchString(a) {
				return "", fmt.Errorf("node: card: bad address %q", a)
			}
		}
		fmt.Fprintf(&b, " addr=%s", strings.Join(c.Addrs, ","))
	}
	fmt.Fprintf(&b, " at=%s", c.Issued.UTC().Format(time.RFC3339))
	return b.String(), nil
}

func (l *Location) check() error {
	if math.IsNaN(l.Lat) || math.IsNaN(l.Lon) || l.Lat < -90 || l.Lat > 90 || l.Lon < -180 || l.Lon > 180 {
		return fmt.Errorf("node: card: location %v,%v out of range", l.Lat, l.Lon)
	}
	return nil
}

// SignCard returns the card as a signed line of text.
func SignCard(c *Card, key ed25519.PrivateKey) (string, error) {
	body, err := c.body()
	if err != nil {
		return "", err
	}
	if string(key.Public().(ed25519.PublicKey)) != string(c.ID[:]) {
		return "", errors.New("node: card: key does not match the card's id")
	}
	sig := ed25519.Sign(key, []byte(body))
	return body + " sig=" + base64.RawURLEncoding.EncodeToString(sig), nil
}

// ParseCard parses a card and verifies its signature. Surrounding white
// space is ignored.
func ParseCard(s string) (*Card, error) {
	s = strings.TrimSpace(s)
	if len(s) > 2048 {
		return nil, errors.New("node: card: longer than 2048 bytes")
	}
	i := strings.LastIndex(s, " sig=")
	if !strings.HasPrefix(s, cardPrefix+" ") || i < 0 {
		return nil, errors.New("node: not a ferry card (want a line starting with \"" + cardPrefix + "\")")
	}
	body, sigText := s[:i], s[i+len(" sig="):]
	sig, err := base64.RawURLEncoding.DecodeString(sigText)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, errors.New("node: card: malformed signature")
	}
	c := &Card{}
	seen := map[string]bool{}
	for _, f := range strings.Split(body, " ")[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok || seen[k] {
			return nil, fmt.Errorf("node: card: malformed field %q", f)
		}
		seen[k] = true
		switch k {
		case "name":
			c.Name = v
		case "id":
			if c.ID, err = bundle.ParseNodeID(v); err != nil {
				return nil, fmt.Errorf("node: card: %w", err)
			}
		case "age":
			c.Recipient = v
		case "loc":
			la, lo, ok := strings.Cut(v, ",")
			lat, err1 := strconv.ParseFloat(la, 64)
			lon, err2 := strconv.ParseFloat(lo, 64)
			if !ok || err1 != nil || err2 != nil {
				return nil, fmt.Errorf("node: card: malformed location %q", v)
			}
			c.Location = &Location{Lat: lat, Lon: lon}
		case "addr":
			c.Addrs = strings.Split(v, ",")
		case "at":
			if c.Issued, err = time.Parse(time.RFC3339, v); err != nil {
				return nil, fmt.Errorf("node: card: malformed time %q", v)
			}
		default:
			// A field from a later version: signed, so kept in the text,
			// but not understood here.
		}
	}
	for _, k := range []string{"name", "id", "age", "at"} {
		if !seen[k] {
			return nil, fmt.Errorf("node: card: missing %s", k)
		}
	}
	if !ed25519.Verify(c.ID.PublicKey(), []byte(body), sig) {
		return nil, ErrCardSignature
	}
	if _, err := c.body(); err != nil {
		return nil, err
	}
	return c, nil
}

// recipient returns the card's age recipient.
func (c *Card) recipient() (*age.X25519Recipient, error) {
	return age.ParseX25519Recipient(c.Recipient)
}
