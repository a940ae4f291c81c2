package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Set at release time with -ldflags "-X main.version=... -X main.commit=...
// -X main.buildDate=...". Left empty, buildInfo falls back to what the Go
// toolchain stamped into the binary (module version, VCS revision and time).
var (
	version   string
	commit    string
	buildDate string
)

// buildInfo describes the running binary.
type buildInfo struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Date    string `json:"date"`
	Go      string `json:"go"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
}

// currentBuild returns the release stamps, completed from the build info
// the Go toolchain embeds.
func currentBuild() buildInfo {
	b := buildInfo{
		Version: version, Commit: commit, Date: buildDate,
		Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
	}
	if runtime.GOARCH == "arm" {
		b.Arch += goarm()
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b.orUnknown()
	}
	modified := false
	var rev, at string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if b.Commit == "" && rev != "" {
		b.Commit = rev
		if modified {
			b.Commit += "-dirty"
		}
	}
	if b.Date == "" {
		b.Date = at
	}
	if b.Version == "" {
		b.Version = info.Main.Version
		if b.Version == "(devel)" || b.Version == "" {
			b.Version = "dev"
		}
	}
	return b.orUnknown()
}

// goarm returns "v6" or "v7" for a GOARCH=arm build.
func goarm() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, s := range info.Settings {
		if s.Key == "GOARM" {
			v, _, _ := strings.Cut(s.Value, ",")
			return "v" + v
		}
	}
	return ""
}

func (b buildInfo) orUnknown() buildInfo {
	for _, p := range []*string{&b.Version, &b.Commit, &b.Date} {
		if *p == "" {
			*p = "unknown"
		}
	}
	return b
}

// String is the one-line form: "ferry 1.2.0 (abc1234, 2026-11-26T03:00:00Z) go1.26.8 linux/arm64".
func (b buildInfo) String() string {
	c := b.Commit
	if len(c) > 12 && !strings.HasSuffix(c, "-dirty") {
		c = c[:12]
	}
	return fmt.Sprintf("ferry %s (commit %s, built %s) %s %s/%s", b.Version, c, b.Date, b.Go, b.OS, b.Arch)
}

func cmdVersion(ctx context.Context, e *env, args []string) error {
	fs := flags("version", e)
	asJSON := fs.Bool("json", false, "print a JSON object: version, commit, date, go, os, arch")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	b := currentBuild()
	if *asJSON {
		return printJSON(e.stdout, b)
	}
	fmt.Fprintln(e.stdout, b)
	return nil
}
