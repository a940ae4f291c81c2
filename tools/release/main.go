// Command release builds ferry's release binaries: static, stripped,
// versioned executables for every Raspberry Pi and for amd64, with a
// SHA256SUMS file, into one folder.
//
//	go run ./tools/release [-out dist] [-version V] [-targets armv6,armv7,arm64,amd64]
//
// Each binary is named ferry-<version>-linux-<target>. The version, commit
// and build date are stamped into it with -ldflags -X (ferry version prints
// them); they default to `git describe --tags --always --dirty`, the HEAD
// commit and its commit time, so that two builds of one commit with the
// same Go release are byte-identical. Every build is CGO_ENABLED=0,
// -trimpath, -s -w, and the command fails if a binary reaches MaxSize.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"time"
)

// MaxSize is the size a release binary must stay under.
const MaxSize = 30 << 20

// target is one platform a release ships for.
type target struct {
	name   string // the suffix of the file name
	goarch string
	goarm  string
}

var targets = []target{
	{"armv6", "arm", "6"}, // Pi Zero, Zero W, 1
	{"armv7", "arm", "7"}, // Pi 2, 3 on a 32-bit OS
	{"arm64", "arm64", ""},
	{"amd64", "amd64", ""},
}

// stamp is what -ldflags -X writes into the binary.
type stamp struct {
	version, commit, date string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("release", flag.ContinueOnError)
	out := fs.String("out", "dist", "the folder to write binaries and SHA256SUMS into")
	ver := fs.String("version", "", "the version to stamp (default: git describe --tags --always --dirty)")
	only := fs.String("targets", "armv6,armv7,arm64,amd64", "the targets to build, comma-separated")
	pkg := fs.String("pkg", "./cmd/ferry", "the package to build")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ts, err := pick(*only)
	if err != nil {
		return err
	}
	st := gitStamp(ctx)
	if *ver != "" {
		st.version = *ver
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	var sums bytes.Buffer
	for _, t := range ts {
		name := fmt.Sprintf("ferry-%s-linux-%s", st.version, t.name)
		dst := filepath.Join(*out, name)
		start := time.Now()
		if err := build(ctx, t, st, *pkg, dst); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		size, sum, err := measure(dst)
		if err != nil {
			return err
		}
		if size >= MaxSize {
			return fmt.Errorf("%s is %d bytes, over the %d-byte limit", name, size, MaxSize)
		}
		fmt.Fprintf(&sums, "%s  %s\n", sum, name)
		fmt.Fprintf(stdout, "%-36s %6.1f MB  %s\n", name, float64(size)/1e6, time.Since(start).Round(100*time.Millisecond))
	}
	if err := os.WriteFile(filepath.Join(*out, "SHA256SUMS"), sums.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (check with: cd %s && sha256sum -c SHA256SUMS)\n", filepath.Join(*out, "SHA256SUMS"), *out)
	return nil
}

func pick(list string) ([]target, error) {
	var ts []target
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		found := false
		for _, t := range targets {
			if t.name == name {
				ts, found = append(ts, t), true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown target %q (want armv6, armv7, arm64 or amd64)", name)
		}
	}
	return ts, nil
}

func build(ctx context.Context, t target, st stamp, pkg, dst string) error {
	ld := fmt.Sprintf("-s -w -X main.version=%s -X main.commit=%s -X main.buildDate=%s", st.version, st.commit, st.date)
	cmd := exec.CommandContext(ctx, goTool(), "build", "-trimpath", "-ldflags", ld, "-o", dst, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+t.goarch, "GOARM="+t.goarm)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// goTool is the go command: $GO, else the one that runs this program
// (go run), else go on $PATH.
func goTool() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	if root := os.Getenv("GOROOT"); root != "" {
		if p := filepath.Join(root, "bin", "go"); exists(p) {
			return p
		}
	}
	return "go"
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func measure(p string) (int64, string, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return n, hex.EncodeToString(h.Sum(nil)), err
}

// gitStamp reads version, commit and commit time from git, with
// placeholders outside a repository. SOURCE_DATE_EPOCH overrides the date.
func gitStamp(ctx context.Context) stamp {
	st := stamp{version: "dev", commit: "unknown", date: "unknown"}
	if v, err := git(ctx, "describe", "--tags", "--always", "--dirty"); err == nil {
		st.version = v
	}
	if c, err := git(ctx, "rev-parse", "HEAD"); err == nil {
		st.commit = c
		if dirty, _ := git(ctx, "status", "--porcelain", "--untracked-files=no"); dirty != "" {
			st.commit += "-dirty"
		}
	}
	if d, err := git(ctx, "log", "-1", "--format=%ct"); err == nil {
		st.date = unixDate(d)
	}
	if e := os.Getenv("SOURCE_DATE_EPOCH"); e != "" {
		st.date = unixDate(e)
	}
	return st
}

func unixDate(s string) string {
	var sec int64
	if _, err := fmt.Sscan(s, &sec); err != nil {
		return "unknown"
	}
	return time.Unix(sec, 0).UTC().Format(time.RFC3339)
}

func git(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "git", args...).Output()
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(out))
	if s == "" {
		return "", errors.New("git: no output")
	}
	return s, nil
}
