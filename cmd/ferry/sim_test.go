package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
)

// TestSimCommand runs 'ferry sim' on the small scenario under direct
// delivery (the quickest mode) and reads its JSON; an unknown scenario
// or mode is a usage error.
func TestSimCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"sim", "--scenario", "small", "--mode", "direct", "--json", "--dir", t.TempDir()}, nil, &out, &errOut)
	if err != nil {
		t.Fatalf("ferry sim: %v\n%s", err, errOut.String())
	}
	var rs []struct {
		Mode     string `json:"mode"`
		Scenario string `json:"scenario"`
		All      struct{ Sent, Delivered int }
	}
	if err := json.Unmarshal(out.Bytes(), &rs); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(rs) != 1 || rs[0].Mode != "direct" || rs[0].Scenario != "small" || rs[0].All.Sent == 0 || rs[0].All.Delivered == 0 {
		t.Fatalf("results: %+v", rs)
	}
	for _, args := range [][]string{{"sim", "--scenario", "nowhere"}, {"sim", "--mode", "flood"}} {
		var ee *exitError
		if err := run(context.Background(), args, nil, &out, &errOut); !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}
