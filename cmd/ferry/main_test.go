package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ferryBin is the real ferry binary, built once for the end-to-end tests.
var ferryBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ferry-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ferryBin = filepath.Join(dir, "ferry")
	build := exec.Command("go", "build", "-o", ferryBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building ferry:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what one run of the binary did.
type result struct {
	stdout, stderr string
	code           int
}

// ferry runs the binary with args and returns what it printed and its
// exit status. It fails the test only if the binary could not run.
func ferry(t testing.TB, args ...string) result {
	t.Helper()
	cmd := exec.Command(ferryBin, args...)
	cmd.Env = append(os.Environ(), "FERRY_DATA=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("ferry %s: %v", strings.Join(args, " "), err)
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// mustFerry runs the binary and fails the test unless it exits 0.
func mustFerry(t testing.TB, args ...string) string {
	t.Helper()
	r := ferry(t, args...)
	if r.code != 0 {
		t.Fatalf("ferry %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// community is a node in a data directory with one user.
type community struct {
	name, data, user string
}

// newCommunity initializes a node with one user.
func newCommunity(t testing.TB, root, name, user string) community {
	t.Helper()
	c := community{name: name, data: filepath.Join(root, name), user: user}
	mustFerry(t, "init", "--data", c.data, "--name", name)
	mustFerry(t, "user", "add", "--data", c.data, user)
	return c
}

// introduce makes each community trust the others.
func introduce(t testing.TB, cs ...community) {
	t.Helper()
	for _, a := range cs {
		card := strings.TrimSpace(mustFerry(t, "card", "--data", a.data))
		for _, b := range cs {
			if a.name != b.name {
				mustFerry(t, "peer", "add", "--data", b.data, card)
			}
		}
	}
}
