package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestVersion(t *testing.T) {
	out := mustFerry(t, "version")
	if !strings.HasPrefix(out, "ferry ") || !strings.Contains(out, runtime.Version()) {
		t.Errorf("ferry version = %q", out)
	}
	var b buildInfo
	if err := json.Unmarshal([]byte(mustFerry(t, "version", "--json")), &b); err != nil {
		t.Fatal(err)
	}
	if b.Version == "" || b.Commit == "" || b.Date == "" || b.OS != runtime.GOOS || b.Go != runtime.Version() {
		t.Errorf("ferry version --json = %+v", b)
	}
}

// TestRelease builds the armv6 and arm64 release binaries with the release
// tool (the Go build cache makes a second run quick), checks that they are
// static, stamped and small enough, and runs them under qemu user mode
// when it is installed (Debian qemu-user).
func TestRelease(t *testing.T) {
	dist := t.TempDir()
	const ver = "v9.8.7-test"
	start := time.Now()
	rel := exec.Command("go", "run", "ferry/tools/release", "-out", dist, "-version", ver, "-targets", "armv6,arm64", "-pkg", "ferry/cmd/ferry")
	if out, err := rel.CombinedOutput(); err != nil {
		t.Fatalf("release: %v\n%s", err, out)
	} else {
		t.Logf("release (%s):\n%s", time.Since(start).Round(time.Second), out)
	}
	sums := readSums(t, filepath.Join(dist, "SHA256SUMS"))
	if len(sums) != 2 {
		t.Fatalf("SHA256SUMS lists %d files, want 2", len(sums))
	}
	for _, arch := range []struct{ name, qemu, uname string }{
		{"armv6", "qemu-arm", "linux/armv6"},
		{"arm64", "qemu-aarch64", "linux/arm64"},
	} {
		t.Run(arch.name, func(t *testing.T) {
			name := "ferry-" + ver + "-linux-" + arch.name
			bin := filepath.Join(dist, name)
			data, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			if len(data) >= 30<<20 {
				t.Errorf("%s is %d bytes, want under 30 MiB", name, len(data))
			}
			sum := sha256.Sum256(data)
			if sums[name] != hex.EncodeToString(sum[:]) {
				t.Errorf("SHA256SUMS has %q for %s, the file hashes to %x", sums[name], name, sum)
			}
			if _, err := exec.LookPath("file"); err == nil {
				out, err := exec.Command("file", bin).Output()
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(out), "statically linked") {
					t.Errorf("file says %s", out)
				}
			} else {
				t.Log("no file command: static linking not checked (apt-get install file)")
			}
			qemu, err := exec.LookPath(arch.qemu)
			if err != nil {
				t.Logf("no %s: not running the binary (apt-get install qemu-user)", arch.qemu)
				return
			}
			emu := func(args ...string) string {
				t.Helper()
				out, err := exec.Command(qemu, append([]string{bin}, args...)...).CombinedOutput()
				if err != nil {
					t.Fatalf("%s %s %s: %v\n%s", arch.qemu, name, strings.Join(args, " "), err, out)
				}
				return string(out)
			}
			if v := emu("version"); !strings.Contains(v, "ferry "+ver+" ") || !strings.Contains(v, arch.uname) {
				t.Errorf("version under %s = %q, want %s for %s", arch.qemu, v, ver, arch.uname)
			}
			d := filepath.Join(t.TempDir(), "node")
			emu("init", "--data", d, "--name", "pi-"+arch.name)
			if card := emu("card", "--data", d); !strings.HasPrefix(card, "ferry-card/1 name=pi-"+arch.name+" ") {
				t.Errorf("card under %s = %q", arch.qemu, card)
			}
		})
	}
}

func readSums(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("bad SHA256SUMS line %q", sc.Text())
		}
		m[name] = sum
	}
	return m
}
