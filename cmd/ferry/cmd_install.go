package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
)

// unitPath is where ferry install writes the unit, under --prefix; the
// config file goes into the data directory (DATA/ferry.toml), where ferry
// serve and ferry status find it.
const unitPath = "etc/systemd/system/ferry.service"

// installConfig is what the unit and the config file are made of.
type installConfig struct {
	Bin, Data, User, Listen string
	StateDir                string // set when Data is under /var/lib: systemd creates it
	Caps                    string
	Port                    int
}

func cmdInstall(ctx context.Context, e *env, args []string) error {
	fs := flags("install", e)
	data := fs.String("data", "/var/lib/ferry", "the node's data directory (absolute)")
	usr := fs.String("user", "ferry", "the system user the service runs as (created if missing)")
	listen := fs.String("listen", "0.0.0.0:80", "the address ferry serve gives the web inbox")
	bin := fs.String("bin", "/usr/local/bin/ferry", "where the ferry binary lives (this one is copied there if it is missing)")
	prefix := fs.String("prefix", "/", "the root to write under; anything but / writes the files only (for packaging and tests)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	c, err := newInstallConfig(*bin, *data, *usr, *listen)
	if err != nil {
		return err
	}
	system := filepath.Clean(*prefix) == "/"
	if system && os.Geteuid() != 0 {
		return errors.New("install: run as root (sudo ferry install), or give --prefix DIR to write the files elsewhere")
	}
	unitText, err := renderInstall(unitTemplate, c)
	if err != nil {
		return err
	}
	known, _ := serveFlags(&env{stderr: io.Discard})
	confText := []byte(defaultConfig(known, configHeader, map[string]string{"listen": c.Listen}))
	unit := filepath.Join(*prefix, unitPath)
	if err := installFile(unit, unitText, 0o644, true); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s\n", unit)
	conf := filepath.Join(*prefix, c.Data, configName)
	if err := installFile(conf, confText, 0o644, false); errors.Is(err, os.ErrExist) {
		fmt.Fprintf(e.stdout, "kept %s (it exists; its settings, listen included, stay as they are)\n", conf)
	} else if err != nil {
		return err
	} else {
		fmt.Fprintf(e.stdout, "wrote %s\n", conf)
	}
	if system {
		if err := setUpSystem(ctx, e, c); err != nil {
			return err
		}
	}
	printNextSteps(e.stdout, c, system)
	return nil
}

func newInstallConfig(bin, data, usr, listen string) (*installConfig, error) {
	if !filepath.IsAbs(data) || !filepath.IsAbs(bin) {
		return nil, usageError("install: --data and --bin must be absolute paths")
	}
	for _, s := range []string{bin, data, usr, listen} {
		if s == "" || strings.ContainsAny(s, " \t\n\"'\\%$;") {
			return nil, usageError("install: %q: paths, user and address may not hold spaces, quotes or %%$;\\", s)
		}
	}
	_, port, err := net.SplitHostPort(listen)
	p, perr := strconv.Atoi(port)
	if err != nil || perr != nil || p < 0 || p > 65535 {
		return nil, usageError("install: --listen wants HOST:PORT, e.g. 0.0.0.0:80")
	}
	c := &installConfig{Bin: bin, Data: filepath.Clean(data), User: usr, Listen: listen, Port: p}
	if rel, ok := strings.CutPrefix(c.Data, "/var/lib/"); ok && rel != "" {
		c.StateDir = rel
	}
	// BLE (go-ble opens raw HCI sockets) needs CAP_NET_ADMIN and
	// CAP_NET_RAW; a port below 1024 needs CAP_NET_BIND_SERVICE.
	c.Caps = "CAP_NET_ADMIN CAP_NET_RAW"
	if p < 1024 {
		c.Caps += " CAP_NET_BIND_SERVICE"
	}
	return c, nil
}

func renderInstall(tmpl *template.Template, c *installConfig) ([]byte, error) {
	var b strings.Builder
	if err := tmpl.Execute(&b, c); err != nil {
		return nil, fmt.Errorf("install: %s: %w", tmpl.Name(), err)
	}
	return []byte(b.String()), nil
}

// installFile writes data to path atomically. Without replace, an existing
// file is kept and fs.ErrExist returned.
func installFile(path string, data []byte, perm os.FileMode, replace bool) error {
	if !replace {
		if _, err := os.Stat(path); err == nil {
			return fs.ErrExist
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("install: %w", err)
	}
	return nil
}

// setUpSystem creates the service user and the data directory, and puts
// this binary at c.Bin if nothing is there.
func setUpSystem(ctx context.Context, e *env, c *installConfig) error {
	if _, err := user.Lookup(c.User); err != nil {
		cmd := exec.CommandContext(ctx, "useradd", "--system", "--user-group", "--home-dir", c.Data,
			"--no-create-home", "--shell", "/usr/sbin/nologin", c.User)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("install: useradd %s: %v: %s", c.User, err, strings.TrimSpace(string(out)))
		}
		fmt.Fprintf(e.stdout, "created system user %s\n", c.User)
	}
	u, err := user.Lookup(c.User)
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.MkdirAll(c.Data, 0o700); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if err := os.Chown(c.Data, uid, gid); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if _, err := os.Stat(c.Bin); errors.Is(err, fs.ErrNotExist) {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("install: %w", err)
		}
		if err := copyExecutable(self, c.Bin); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "copied %s to %s\n", self, c.Bin)
	}
	return nil
}

func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("install: copy the binary to %s: %w", dst, err)
	}
	return nil
}

func printNextSteps(w io.Writer, c *installConfig, system bool) {
	fmt.Fprintln(w, "\nNext:")
	if !system {
		fmt.Fprintf(w, "  (files written under a prefix: copy them into place, create the user %s and %s)\n", c.User, c.Data)
	}
	fmt.Fprintln(w, "  sudo systemctl daemon-reload")
	fmt.Fprintln(w, "  sudo systemctl enable --now ferry")
	fmt.Fprintln(w, "  journalctl -u ferry | grep 'setup code'     # the one-time setup code, printed at first start")
	fmt.Fprintf(w, "Then open %s/setup on a phone or laptop on the same network and enter the code.\n", setupAddress(c))
}

// setupAddress guesses the address people type: the listen host, or this
// machine's first LAN address when it listens on all of them.
func setupAddress(c *installConfig) string {
	host, _, _ := net.SplitHostPort(c.Listen)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "ferry.lan"
		if ip := lanAddress(); ip != "" {
			host = ip
		}
	}
	if c.Port == 80 {
		return "http://" + host
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(c.Port))
}

func lanAddress() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	return ""
}

var unitTemplate = template.Must(template.New("unit").Parse(`# Written by ferry install. Run "systemctl daemon-reload" after editing.
[Unit]
Description=ferry: delay-tolerant messenger and archive for communities
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User={{.User}}
Group={{.User}}
# Serial LoRa modems (/dev/ttyUSB*, /dev/ttyACM*) belong to dialout.
SupplementaryGroups=dialout
# Settings: {{.Data}}/ferry.toml (a flag here would win over the file).
ExecStart={{.Bin}} serve --data {{.Data}}
Restart=on-failure
RestartSec=5s
TimeoutStopSec=30s
# Logs go to journald, which rotates them (journalctl -u ferry).
SyslogIdentifier=ferry
{{- if .StateDir}}
StateDirectory={{.StateDir}}
StateDirectoryMode=0700
{{- end}}
UMask=0077

# Hardening: the node writes only its data directory and USB sticks.
ProtectSystem=strict
ReadWritePaths={{.Data}}
ReadWritePaths=-/media -/mnt -/run/media
ProtectHome=yes
PrivateTmp=yes
NoNewPrivileges=yes
# BLE needs raw HCI sockets (CAP_NET_ADMIN, CAP_NET_RAW){{if lt .Port 1024}}; port {{.Port}} needs CAP_NET_BIND_SERVICE{{end}}.
CapabilityBoundingSet={{.Caps}}
AmbientCapabilities={{.Caps}}
DevicePolicy=closed
DeviceAllow=char-ttyUSB rw
DeviceAllow=char-ttyACM rw
DeviceAllow=char-ttyAMA rw
DeviceAllow=char-ttyS rw
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_BLUETOOTH
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
`))

// configHeader opens the config file ferry install writes.
const configHeader = `# ferry configuration (TOML), written by ferry install. ferry serve and
# ferry status read it from the data directory (or from --config FILE).
#
# Every setting is a flag of "ferry serve": a key is the flag's name with
# "_" for "-", and a flag whose first word it shares with others sits in a
# table of that word ([sync] listen is --sync-listen). A flag given on the
# command line wins over this file. Settings commented out show their
# default. An unknown key or a bad value stops ferry serve with the line
# number. After a change: sudo systemctl restart ferry
`
