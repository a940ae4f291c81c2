package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	known, _ := serveFlags(&env{stderr: io.Discard})
	good := `# a comment
listen = "0.0.0.0:80"
max_upload = 20
verbose = true

[sync]
listen = "off"
every = "daily 03:00"

[beacon]
to = ["10.0.0.255:7374", "10.1.0.255:7374"]
every = "1m"

[alarm]
free_percent = 12.5
free_mib = 512
`
	ss, err := parseConfig("ferry.toml", []byte(good), known)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range ss {
		vals, err := flagValues(known.Lookup(s.flag), s.value)
		if err != nil {
			t.Fatal(err)
		}
		got[s.flag] = fmt.Sprintf("%d:%s", s.line, strings.Join(vals, "|"))
	}
	want := map[string]string{
		"listen": "2:0.0.0.0:80", "max-upload": "3:20", "verbose": "4:true",
		"sync-listen": "7:off", "sync-every": "8:daily 03:00",
		"beacon-to": "11:10.0.0.255:7374,10.1.0.255:7374", "beacon-every": "12:1m",
		"alarm-free-percent": "15:12.5", "alarm-free-mib": "16:512",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %v", got)
	}

	for _, c := range []struct{ file, want string }{
		{"listen = \"a\"\nlisen = \"b\"\n", `ferry.toml:2: unknown setting "lisen"`},
		{"\n\n[sync]\nlisten = \"off\"\nqouta = 5\n", `ferry.toml:5: unknown setting "sync.qouta"`},
		{"[sync]\nquota = \"lots\"\n", `ferry.toml:2: sync.quota: want a whole number, not the string "lots"`},
		{"discover = \"no\"\n", `ferry.toml:1: discover: want true or false`},
		{"\n[beacon]\nevery = 30\n", `ferry.toml:3: beacon.every: want a duration in quotes`},
		{"[beacon]\nevery = \"soon\"\n", `ferry.toml:2: beacon.every: want a duration such as "30s"`},
		{"listen = 80\n", `ferry.toml:1: listen: want a string in quotes, not the number 80`},
		{"listen = [\"a\", \"b\"]\n", `ferry.toml:1: listen: want a string, not a list`},
		{"sync_listen = \"off\"\n[sync]\nlisten = \":1\"\n", `ferry.toml:3: "sync.listen" sets --sync-listen, which "sync_listen" on line 1 sets already`},
		{"listen = \"a\"\nlisten = \"b\"\n", `ferry.toml:2:`},
		{"\n\nlisten = \"unterminated\n", `ferry.toml:3:`},
		{"config = \"x.toml\"\n", `ferry.toml:1: unknown setting "config"`},
		{"[[sync]]\nlisten = \"off\"\n", `ferry.toml:1: unknown setting "sync"`},
	} {
		_, err := parseConfig("ferry.toml", []byte(c.file), known)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.file, err, c.want)
		}
	}
}

// TestDefaultConfigWorks uncomments every setting of the file ferry
// install writes: each must be a flag of serve and its default must be
// accepted, and every flag of serve must be in the file.
func TestDefaultConfigWorks(t *testing.T) {
	known, _ := serveFlags(&env{stderr: io.Discard})
	text := defaultConfig(known, configHeader, map[string]string{"listen": "0.0.0.0:80"})
	var lines []string
	settingRE := regexp.MustCompile(`^# ([a-z0-9_]+ = .*)$`)
	n := 0
	for _, l := range strings.Split(text, "\n") {
		if m := settingRE.FindStringSubmatch(l); m != nil {
			l = m[1]
			n++
		}
		lines = append(lines, l)
	}
	ss, err := parseConfig("ferry.toml", []byte(strings.Join(lines, "\n")), known)
	if err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(lines, "\n"))
	}
	set := map[string]bool{}
	for _, s := range ss {
		set[s.flag] = true
	}
	known.VisitAll(func(f *flag.Flag) {
		if f.Name != "config" && f.Name != "data" && len(f.Name) > 1 && !set[f.Name] {
			t.Errorf("flag --%s is not in the default config file", f.Name)
		}
	})
	if n < 10 {
		t.Errorf("only %d commented settings:\n%s", n, text)
	}
	// Applying every default changes nothing.
	fs, o := serveFlags(&env{stderr: io.Discard})
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, configName), []byte(strings.Join(lines, "\n")), 0o644)
	if err := fs.Parse([]string{"--data", dir}); err != nil {
		t.Fatal(err)
	}
	if err := applyConfig(fs, fs); err != nil {
		t.Fatal(err)
	}
	if *o.listen != "0.0.0.0:80" || *o.maxUpload != 50 || o.live.beaconEvery != 30*time.Second || !o.live.discover {
		t.Errorf("defaults changed: listen %q, max-upload %d, beacon-every %v, discover %v", *o.listen, *o.maxUpload, o.live.beaconEvery, o.live.discover)
	}
}

var servingRE = regexp.MustCompile(`web inbox on http://([0-9.:]+)/`)

// serveAddr runs the ferry binary's serve with args until it prints its
// address, then stops it (SIGTERM) and returns the address, or returns
// the error output when serve exits first.
func serveAddr(t *testing.T, args ...string) (addr, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(ferryBin, append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), "FERRY_DATA=")
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	sc := bufio.NewScanner(pipe)
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if m := servingRE.FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1]
			break
		}
	}
	if addr != "" {
		cmd.Process.Signal(syscall.SIGTERM)
	}
	io.Copy(&log, pipe)
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	}
	return addr, log.String(), code
}

// TestServeReadsConfig: a setting in DATA/ferry.toml changes what serve
// does, a flag wins over it, --config names another file, and a bad file
// stops serve with its line.
func TestServeReadsConfig(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "north")
	mustFerry(t, "init", "--data", data, "--name", "north")
	port := freePort(t, "tcp")
	conf := fmt.Sprintf("# from the file\nlisten = %q\ndiscover = false\nusb_watch = \"off\"\n\n[sync]\nlisten = \"off\"\n", port)
	if err := os.WriteFile(filepath.Join(data, configName), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	addr, log, _ := serveAddr(t, "--data", data)
	if addr != port {
		t.Fatalf("serve listened on %q, want %s from ferry.toml:\n%s", addr, port, log)
	}
	if strings.Contains(log, "syncing with peers on") {
		t.Errorf("live links ran though ferry.toml turned them off:\n%s", log)
	}
	addr, log, _ = serveAddr(t, "--data", data, "--listen", "127.0.0.1:0")
	if addr == "" || addr == port {
		t.Fatalf("--listen did not win over the file: %q\n%s", addr, log)
	}

	// --config names a file elsewhere, which may give the data directory.
	other := filepath.Join(root, "etc.toml")
	port2 := freePort(t, "tcp")
	os.WriteFile(other, fmt.Appendf(nil, "data = %q\nlisten = %q\ndiscover = false\nusb_watch = \"off\"\n[sync]\nlisten = \"off\"\n", data, port2), 0o644)
	if addr, log, _ = serveAddr(t, "--config", other); addr != port2 {
		t.Fatalf("serve --config listened on %q, want %s:\n%s", addr, port2, log)
	}

	// A bad file stops serve before it opens anything, naming the line.
	for _, c := range []struct{ file, want string }{
		{"discover = false\n[sync]\nlisten = \"off\"\nevery = \"whenever\"\nquota = -\n", "ferry.toml:5:"},
		{"discover = false\nlisten_web = \"0.0.0.0:80\"\n", `ferry.toml:2: unknown setting "listen_web"`},
		{"discover = false\n[beacon]\nevery = \"often\"\n", `ferry.toml:3: beacon.every: want a duration`},
		{"data = \"/elsewhere\"\n", `ferry.toml:1: data: the data directory's own ferry.toml cannot move it`},
	} {
		os.WriteFile(filepath.Join(data, configName), []byte(c.file), 0o644)
		addr, log, code := serveAddr(t, "--data", data, "--listen", "127.0.0.1:0", "--sync-listen", "off", "--discover=false")
		if addr != "" || code == 0 || !strings.Contains(log, c.want) {
			t.Errorf("file %q: serve at %q, exit %d, want an error with %q:\n%s", c.file, addr, code, c.want, log)
		}
	}
	if r := ferry(t, "serve", "--config", filepath.Join(root, "missing.toml"), "--sync-listen", "off", "--discover=false"); r.code == 0 || !strings.Contains(r.stderr, "missing.toml") {
		t.Errorf("serve with a missing --config: exit %d, %s", r.code, r.stderr)
	}
}

// TestStatusReadsConfig: the disk alarm's thresholds come from
// ferry.toml, and flags win over them. The free space is real: a
// threshold of 100 % is above it, 0 is below it.
func TestStatusReadsConfig(t *testing.T) {
	data := filepath.Join(t.TempDir(), "north")
	mustFerry(t, "init", "--data", data, "--name", "north")
	if r := ferry(t, "status", "--data", data, "--alarm-free-percent", "0", "--alarm-free-mib", "0"); r.code != 0 || strings.Contains(r.stdout, "ALARM") {
		t.Fatalf("status with no thresholds: exit %d\n%s", r.code, r.stdout)
	}
	os.WriteFile(filepath.Join(data, configName), []byte("# serve's settings are checked too\nlisten = \"0.0.0.0:80\"\n[alarm]\nfree_percent = 100\nfree_mib = 0\n"), 0o644)
	r := ferry(t, "status", "--data", data)
	if r.code != 1 || !strings.Contains(r.stdout, "ALARM    disk nearly full") || !strings.Contains(r.stdout, "below 100 %") {
		t.Errorf("status with free_percent = 100 in ferry.toml: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := ferry(t, "status", "--data", data, "--alarm-free-percent", "0"); r.code != 0 || strings.Contains(r.stdout, "ALARM") {
		t.Errorf("--alarm-free-percent 0 did not win over the file: exit %d\n%s", r.code, r.stdout)
	}
	os.WriteFile(filepath.Join(data, configName), []byte("[alarm]\nfree_prcent = 5\n"), 0o644)
	if r := ferry(t, "status", "--data", data); r.code == 0 || !strings.Contains(r.stderr, `ferry.toml:2: unknown setting "alarm.free_prcent"`) {
		t.Errorf("status with a typo in ferry.toml: exit %d, %s", r.code, r.stderr)
	}
}

func FuzzParseConfig(f *testing.F) {
	known, _ := serveFlags(&env{stderr: io.Discard})
	f.Add([]byte(defaultConfig(known, configHeader, map[string]string{"listen": "0.0.0.0:80"})))
	f.Add([]byte("listen = \"a\"\n[sync]\nlisten = \"off\"\n[beacon]\nto = [\"a\", \"b\"]\n"))
	f.Add([]byte("a = {b = {c = 1}}\n[x.y]\nz = 2\n"))
	f.Add([]byte("[alarm]\nfree_percent = 1e3\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ss, err := parseConfig("f.toml", data, known)
		if err != nil {
			return
		}
		for _, s := range ss {
			fl := known.Lookup(s.flag)
			if fl == nil {
				t.Fatalf("setting %q maps onto no flag", s.key)
			}
			if _, err := flagValues(fl, s.value); err != nil {
				t.Fatalf("accepted %q but: %v", s.key, err)
			}
		}
	})
}

// TestStatusSeesServe: while serve runs, ferry status shows it with its
// uptime; after a clean stop, it does not.
func TestStatusSeesServe(t *testing.T) {
	data := filepath.Join(t.TempDir(), "north")
	mustFerry(t, "init", "--data", data, "--name", "north")
	cmd := exec.Command(ferryBin, "serve", "--data", data, "--listen", "127.0.0.1:0", "--sync-listen", "off", "--discover=false", "--usb-watch", "off")
	pipe, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(pipe)
	for sc.Scan() && !strings.Contains(sc.Text(), "setup code:") {
	}
	go io.Copy(io.Discard, pipe)
	out := mustFerry(t, "status", "--data", data, "--alarm-free-percent", "0", "--alarm-free-mib", "0")
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if !strings.Contains(out, fmt.Sprintf("serve    running (pid %d), up ", cmd.Process.Pid)) {
		t.Errorf("status while serve runs:\n%s", out)
	}
	out = mustFerry(t, "status", "--data", data, "--alarm-free-percent", "0", "--alarm-free-mib", "0")
	if !strings.Contains(out, "serve    not running") {
		t.Errorf("status after serve stopped:\n%s", out)
	}
}
