package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependenciesPointOneWay enforces the package layering of
// docs/node.md: bundle ← node ← carriers ← usb, lora, ble ← web ← cmd.
func TestDependenciesPointOneWay(t *testing.T) {
	layer := map[string]int{
		"ferry/bundle": 0, "ferry/node": 1, "ferry/carriers": 2, "ferry/archive": 2,
		"ferry/usb": 3, "ferry/lora": 3, "ferry/transfer": 3, "ferry/ble": 3, "ferry/web": 4, "ferry/sim": 4,
	}
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "ferry/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg, imports := f[0], f[1:]
		lp, ok := layer[pkg]
		if !ok {
			continue
		}
		for _, imp := range imports {
			if li, ok := layer[imp]; ok && li >= lp && imp != pkg {
				t.Errorf("%s imports %s: dependencies must point down the layers", pkg, imp)
			}
		}
	}
}
