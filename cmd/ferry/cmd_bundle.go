package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"ferry/bundle"
	"ferry/node"
)

func cmdExport(ctx context.Context, e *env, args []string) error {
	fset := flags("export", e)
	data := dataFlag(fset)
	to := fset.String("to", "", "the peer the bundles are for (name or ID)")
	out := fset.String("out", "", "the folder to write bundle files into")
	if _, err := parse(fset, args); err != nil {
		return err
	}
	if *to == "" || *out == "" {
		return usageError("export: want --to NODE --out DIR")
	}
	n, p, err := openNodeFor(ctx, *data, *to)
	if err != nil {
		return err
	}
	defer n.Close()
	rep, err := n.Export(ctx, p.ID, *out)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "exported %d bundles (%d bytes) for %s to %s; %d already there\n",
		rep.Written, rep.Bytes, p.Name, *out, rep.Present)
	return nil
}

// importResult is one line of an import report.
type importResult struct {
	File     string `json:"file"`
	ID       string `json:"id,omitempty"`
	Status   string `json:"status"` // applied, stored, duplicate, refused
	Messages int    `json:"messages,omitempty"`
	Receipts int    `json:"receipts,omitempty"`
	Reason   string `json:"reason,omitempty"`

	notIntroduced bool // an announcement whose introducer may come later
}

func cmdImport(ctx context.Context, e *env, args []string) error {
	fset := flags("import", e)
	data := dataFlag(fset)
	asJSON := fset.Bool("json", false, "print a JSON report")
	paths, err := parse(fset, args)
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		return usageError("import: want one or more files or folders")
	}
	files, err := bundleFiles(paths)
	if err != nil {
		return err
	}
	n, err := openNode(*data)
	if err != nil {
		return err
	}
	defer n.Close()
	results, err := importFiles(ctx, n, files)
	if err != nil {
		return err
	}
	counts := map[string]int{}
	for _, r := range results {
		counts[r.Status]++
		if !*asJSON {
			switch r.Status {
			case "refused":
				fmt.Fprintf(e.stderr, "refused %s: %s\n", r.File, r.Reason)
			default:
				fmt.Fprintf(e.stdout, "%-9s %s", r.Status, r.File)
				if r.Messages+r.Receipts > 0 {
					fmt.Fprintf(e.stdout, " (%d messages, %d receipts)", r.Messages, r.Receipts)
				}
				fmt.Fprintln(e.stdout)
			}
		}
	}
	if *asJSON {
		if results == nil {
			results = []importResult{}
		}
		if err := printJSON(e.stdout, results); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "%d files: %d applied, %d stored for carrying, %d duplicate, %d refused\n",
			len(files), counts["applied"], counts["stored"], counts["duplicate"], counts["refused"])
	}
	if counts["refused"] > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d of %d bundles refused", counts["refused"], len(files))}
	}
	return nil
}

// importFiles ingests the files in order, then once more the
// announcements refused for want of an introduction while that lets more
// in: the introducing announcement may come later in the list
// (docs/network.md).
func importFiles(ctx context.Context, n *node.Node, files []string) ([]importResult, error) {
	results := make([]importResult, 0, len(files))
	var again []int
	for i, f := range files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		r, err := importFile(ctx, n, f)
		if err != nil {
			return nil, err
		}
		if r.notIntroduced {
			again = append(again, i)
		}
		results = append(results, r)
	}
	for len(again) > 0 {
		var still []int
		for _, i := range again {
			r, err := importFile(ctx, n, files[i])
			if err != nil {
				return nil, err
			}
			results[i] = r
			if r.notIntroduced {
				still = append(still, i)
			}
		}
		if len(still) == len(again) {
			break
		}
		again = still
	}
	return results, nil
}

// importFile ingests one file. A refused bundle is a result, not an error;
// an error means the node itself failed.
func importFile(ctx context.Context, n *node.Node, path string) (importResult, error) {
	r := importResult{File: path}
	f, err := os.Open(path)
	if err != nil {
		r.Status, r.Reason = "refused", err.Error()
		return r, nil
	}
	defer f.Close()
	res, err := n.Ingest(ctx, f)
	var refused *node.RefusedError
	if errors.As(err, &refused) {
		r.Status, r.Reason, r.notIntroduced = "refused", refused.Reason.Error(), errors.Is(err, node.ErrNotIntroduced)
		if refused.ID != nil {
			r.ID = refused.ID.String()
		}
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("import %s: %w", path, err)
	}
	r.ID, r.Status, r.Messages, r.Receipts = res.ID.String(), string(res.Status), res.Messages, res.Receipts
	return r, nil
}

// bundleFiles expands paths: files as given, folders to the regular files
// below them, leaving out ferry's temporary files.
func bundleFiles(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && path != p && node.IsTemporary(d.Name()) {
				return filepath.SkipDir
			}
			if d.Type().IsRegular() && !node.IsTemporary(d.Name()) {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		sort.Strings(found)
		files = append(files, found...)
	}
	return files, nil
}

// inspection is the JSON form of a bundle inspection.
type inspection struct {
	File           string     `json:"file"`
	ID             string     `json:"id"`
	Kind           string     `json:"kind"`
	Priority       uint8      `json:"priority"`
	HopLimit       uint8      `json:"hop_limit"`
	Signer         string     `json:"signer"`
	Seq            uint64     `json:"seq"`
	DestType       string     `json:"dest_type"`
	Dest           string     `json:"dest"`
	Created        time.Time  `json:"created"`
	Expires        *time.Time `json:"expires,omitempty"`
	ContentSize    uint64     `json:"content_size"`
	PayloadOffset  int64      `json:"payload_offset"`
	PayloadLength  uint64     `json:"payload_length"`
	PayloadSHA256  string     `json:"payload_sha256"`
	Signature      string     `json:"signature"`
	SignatureValid bool       `json:"signature_valid"`
	PayloadValid   bool       `json:"payload_valid"`
	Problem        string     `json:"problem,omitempty"`
}

func cmdBundle(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] != "inspect" {
		return usageError("bundle: want 'inspect FILE'")
	}
	fset := flags("bundle inspect", e)
	asJSON := fset.Bool("json", false, "print JSON")
	pos, err := parse(fset, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("bundle inspect: want one FILE")
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	in, err := bundle.Inspect(f)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	h := in.Header
	out := inspection{
		File: pos[0], ID: in.ID.String(), Kind: h.Kind.String(), Priority: h.Priority, HopLimit: h.HopLimit,
		Signer: h.Source.String(), Seq: h.Seq, DestType: h.Dest.Type.String(), Dest: hex.EncodeToString(h.Dest.ID[:]),
		Created: h.Created, ContentSize: h.ContentSize, PayloadOffset: in.PayloadOffset, PayloadLength: in.PayloadLength,
		PayloadSHA256: hex.EncodeToString(h.PayloadHash[:]), Signature: hex.EncodeToString(in.Signature[:]),
		SignatureValid: in.SignatureValid, PayloadValid: in.PayloadValid,
	}
	if !h.Expires.IsZero() {
		out.Expires = &h.Expires
	}
	if !in.SignatureValid {
		out.Problem = "signature does not verify"
	} else if in.PayloadProblem != nil {
		out.Problem = in.PayloadProblem.Error()
	}
	if *asJSON {
		if err := printJSON(e.stdout, out); err != nil {
			return err
		}
	} else {
		w := e.stdout
		fmt.Fprintf(w, "file       %s\nid         %s\nkind       %s (priority %d)\nsigner     %s\nseq        %d\n",
			out.File, out.ID, out.Kind, out.Priority, out.Signer, out.Seq)
		fmt.Fprintf(w, "dest       %s %s\ncreated    %s\n", out.DestType, out.Dest, out.Created.Format(time.RFC3339))
		if out.Expires != nil {
			fmt.Fprintf(w, "expires    %s\n", out.Expires.Format(time.RFC3339))
		}
		fmt.Fprintf(w, "content    %d bytes\npayload    %d bytes at offset %d\nsignature  %s\npayload ok %v\n",
			out.ContentSize, out.PayloadLength, out.PayloadOffset, map[bool]string{true: "valid", false: "INVALID"}[out.SignatureValid], out.PayloadValid)
		if out.Problem != "" {
			fmt.Fprintf(w, "problem    %s\n", out.Problem)
		}
	}
	if out.Problem != "" {
		return &exitError{code: 1, err: fmt.Errorf("%s: %s", pos[0], out.Problem)}
	}
	return nil
}
