package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/argon2"
)

// argon2id parameters: OWASP's minimum (19 MiB, 2 passes, 1 lane), about
// 40 ms on a laptop and a few hundred on a Pi Zero. hashSlots bounds how
// many hashes run at once, so a burst of logins cannot exhaust a Pi's
// memory.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
	hashSlots    = 2
)

// Password bounds, in bytes.
const (
	minPassword = 8
	maxPassword = 1024
)

var errBadHash = errors.New("web: malformed password hash")

var hashSem = make(chan struct{}, hashSlots)

// hashPassword returns the argon2id hash of pw as a PHC string:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>.
func hashPassword(pw string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argonKey(pw, salt, argonTime, argonMemory, argonThreads)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// checkPassword reports whether pw matches a hash made by hashPassword,
// with the parameters the hash names.
func checkPassword(hash, pw string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return false, errBadHash
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m > 256*1024 || t > 16 || p == 0 {
		return false, errBadHash
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[4])
	want, err2 := enc.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false, errBadHash
	}
	got := argonKey(pw, salt, t, m, p)
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

func argonKey(pw string, salt []byte, t, m uint32, p uint8) []byte {
	hashSem <- struct{}{}
	key := argon2.IDKey([]byte(pw), salt, t, m, p, argonKeyLen)
	<-hashSem
	releaseHashMemory()
	return key
}

var releasing atomic.Bool

// releaseHashMemory hands the 19 MiB a hash took back to the system once
// no hash runs. Left to the Go runtime, it stays in the process for
// minutes and the next garbage collections aim at a heap twice as large:
// 50 logins in a row took a Pi-sized server from 20 to 65 MB resident
// (docs/benchmarks.md, "Raspberry Pi: memory and start-up"). Logins are
// rare and cost tens of milliseconds each, so a collection after them
// costs little; it runs in the background, off the login's path.
func releaseHashMemory() {
	if len(hashSem) == 0 && releasing.CompareAndSwap(false, true) {
		go func() {
			debug.FreeOSMemory()
			releasing.Store(false)
		}()
	}
}

// dummyHash is checked against when a login names no account, so that the
// answer takes as long as for a real one.
var dummyHash = sync.OnceValue(func() string {
	h, _ := hashPassword("no account has this password")
	return h
})

func checkNewPassword(pw, confirm string) error {
	switch {
	case pw != confirm:
		return errors.New("the two passwords differ")
	case len(pw) < minPassword:
		return fmt.Errorf("the password needs at least %d characters", minPassword)
	case len(pw) > maxPassword:
		return fmt.Errorf("the password is longer than %d bytes", maxPassword)
	}
	return nil
}
