package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestInstall(t *testing.T) {
	prefix := t.TempDir()
	out := mustFerry(t, "install", "--prefix", prefix, "--bin", ferryBin, "--data", "/var/lib/ferry", "--user", "ferry", "--listen", "0.0.0.0:80")
	for _, want := range []string{"ferry.service", "ferry.toml", "systemctl enable --now ferry", "journalctl -u ferry", "/setup"} {
		if !strings.Contains(out, want) {
			t.Errorf("install output lacks %q:\n%s", want, out)
		}
	}
	unitFile := filepath.Join(prefix, "etc/systemd/system/ferry.service")
	unit := unitLines(t, unitFile)
	for _, want := range []string{
		"User=ferry",
		"Group=ferry",
		"SupplementaryGroups=dialout",
		"ExecStart=" + ferryBin + " serve --data /var/lib/ferry",
		"StateDirectory=ferry",
		"ProtectSystem=strict",
		"ReadWritePaths=/var/lib/ferry",
		"ProtectHome=yes",
		"PrivateTmp=yes",
		"NoNewPrivileges=yes",
		"CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE",
		"AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE",
		"Restart=on-failure",
		"WantedBy=multi-user.target",
	} {
		if !unit[want] {
			t.Errorf("unit lacks the line %q", want)
		}
	}
	verifyUnit(t, unitFile)

	// The config file, in the data directory: every setting commented but
	// the address given to install.
	confPath := filepath.Join(prefix, "var/lib/ferry", configName)
	conf, err := os.ReadFile(confPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "read it from the data directory") {
		t.Error("the config file's header does not say who reads it")
	}
	settings := 0
	for _, l := range strings.Split(string(conf), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "" || strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
		case strings.HasPrefix(l, "# ") && strings.Contains(l, " = "):
			settings++
		case strings.HasPrefix(l, "#"):
		case l == `listen = "0.0.0.0:80"`:
		default:
			t.Errorf("config line %q is neither a comment nor a section", l)
		}
	}
	if settings < 10 {
		t.Errorf("config file shows %d settings", settings)
	}
	// The binary reads the file it wrote.
	data := filepath.Join(t.TempDir(), "north")
	mustFerry(t, "init", "--data", data, "--name", "north")
	os.WriteFile(filepath.Join(data, configName), conf, 0o644)
	mustFerry(t, "status", "--data", data, "--alarm-free-percent", "0", "--alarm-free-mib", "0")

	// A second install keeps an edited config file.
	os.WriteFile(confPath, []byte("# mine\n"), 0o644)
	out = mustFerry(t, "install", "--prefix", prefix, "--bin", ferryBin, "--data", "/var/lib/ferry", "--listen", "0.0.0.0:8080")
	if !strings.Contains(out, "kept") {
		t.Errorf("second install did not keep the config:\n%s", out)
	}
	mustFerry(t, "install", "--prefix", prefix, "--bin", ferryBin, "--data", "/srv/ferry", "--listen", "0.0.0.0:8080")
	unit = unitLines(t, unitFile)
	if !unit["CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW"] || !unit["ReadWritePaths=/srv/ferry"] {
		t.Errorf("unit for port 8080 and /srv/ferry: %v", unit)
	}
	for l := range unit {
		if strings.HasPrefix(l, "StateDirectory=") {
			t.Errorf("unit for /srv/ferry has %q", l)
		}
	}
	verifyUnit(t, unitFile)

	for _, args := range [][]string{
		{"--data", "relative/dir"},
		{"--listen", "nowhere"},
		{"--user", "a b"},
	} {
		if r := ferry(t, append([]string{"install", "--prefix", t.TempDir()}, args...)...); r.code != 2 {
			t.Errorf("install %v: exit %d, want 2 (%s)", args, r.code, r.stderr)
		}
	}
}

// verifyUnit runs systemd-analyze verify on a unit when it is installed.
func verifyUnit(t *testing.T, path string) {
	t.Helper()
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("no systemd-analyze: unit not verified")
		return
	}
	out, err := exec.Command(sa, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", path, err, out)
	}
}

func unitLines(t *testing.T, path string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, l := range strings.Split(string(data), "\n") {
		m[strings.TrimSpace(l)] = true
	}
	return m
}
