package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// The config file: TOML whose keys are the flags of ferry serve. A key
// maps onto a flag by joining its table and name with "-" and writing "_"
// as "-": listen = ... is --listen, max_upload is --max-upload, and
//
//	[sync]
//	listen = ":7373"
//
// is --sync-listen. So every flag of serve, including those added later,
// can be set in the file without a table of names here. Flags given on the
// command line win over the file. Without --config, DATA/ferry.toml is read
// when it exists.

// configName is the config file's name in the data directory.
const configName = "ferry.toml"

func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "", "a TOML file of settings, named like the flags (default: "+configName+" in the data directory, when it exists); flags given here win over it")
}

// setting is one value of a config file and the flag it sets.
type setting struct {
	key   string // as in the file: "sync.listen"
	line  int
	flag  string // "sync-listen"
	value any
}

// configError is an error in a config file, at a line.
type configError struct {
	path string
	line int
	msg  string
}

func (e *configError) Error() string {
	if e.line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.path, e.line, e.msg)
	}
	return fmt.Sprintf("%s: %s", e.path, e.msg)
}

// flagName is the flag a config key sets.
func flagName(key string) string {
	return strings.ReplaceAll(strings.ReplaceAll(key, ".", "-"), "_", "-")
}

// parseConfig parses a config file and maps every key onto a flag of
// known. An unknown key, a value of the wrong kind or two keys for one flag
// are errors naming the line.
func parseConfig(path string, data []byte, known *flag.FlagSet) ([]setting, error) {
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return nil, &configError{path: path, line: row, msg: fmt.Sprintf("column %d: %s", col, de.Error())}
		}
		return nil, &configError{path: path, msg: err.Error()}
	}
	lines := keyLines(data)
	var out []setting
	var walk func(prefix string, m map[string]any) error
	walk = func(prefix string, m map[string]any) error {
		for _, k := range sortedKeys(m) {
			key := k
			if prefix != "" {
				key = prefix + "." + k
			}
			if sub, ok := m[k].(map[string]any); ok {
				if err := walk(key, sub); err != nil {
					return err
				}
				continue
			}
			out = append(out, setting{key: key, line: lineOf(lines, key), flag: flagName(key), value: m[k]})
		}
		return nil
	}
	if err := walk("", doc); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b setting) int { return a.line - b.line })
	seen := map[string]setting{}
	for _, s := range out {
		if known.Lookup(s.flag) == nil || s.flag == "config" {
			return nil, &configError{path: path, line: s.line, msg: fmt.Sprintf("unknown setting %q (ferry serve has no flag --%s; see ferry serve --help)", s.key, s.flag)}
		}
		if prev, ok := seen[s.flag]; ok {
			return nil, &configError{path: path, line: s.line, msg: fmt.Sprintf("%q sets --%s, which %q on line %d sets already", s.key, s.flag, prev.key, prev.line)}
		}
		seen[s.flag] = s
		if _, err := flagValues(known.Lookup(s.flag), s.value); err != nil {
			return nil, &configError{path: path, line: s.line, msg: fmt.Sprintf("%s: %v", s.key, err)}
		}
	}
	return out, nil
}

// keyLines finds the line of every key in a TOML document (which has
// parsed already), for error messages. Keys are dotted paths.
func keyLines(data []byte) map[string]int {
	lines := map[string]int{}
	var p unstable.Parser
	p.Reset(data)
	var table []string
	keyOf := func(n *unstable.Node) ([]string, int) {
		var parts []string
		line := 0
		it := n.Key()
		for it.Next() {
			k := it.Node()
			if line == 0 {
				line = p.Shape(k.Raw).Start.Line
			}
			parts = append(parts, string(k.Data))
		}
		return parts, line
	}
	var keyval func(prefix []string, n *unstable.Node)
	keyval = func(prefix []string, n *unstable.Node) {
		parts, line := keyOf(n)
		full := append(slices.Clone(prefix), parts...)
		lines[strings.Join(full, ".")] = line
		if v := n.Value(); v != nil && v.Kind == unstable.InlineTable {
			it := v.Children()
			for it.Next() {
				keyval(full, it.Node())
			}
		}
	}
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			var line int
			table, line = keyOf(e)
			lines[strings.Join(table, ".")] = line
		case unstable.KeyValue:
			keyval(table, e)
		}
	}
	return lines
}

// lineOf is the line of key, or of the nearest table holding it.
func lineOf(lines map[string]int, key string) int {
	for {
		if l, ok := lines[key]; ok {
			return l
		}
		i := strings.LastIndexByte(key, '.')
		if i < 0 {
			return 0
		}
		key = key[:i]
	}
}

// flagValues turns a TOML value into the text(s) to give f.Value.Set,
// checking that its kind fits the flag: a bool for a switch, a whole
// number for a count, a string for an address or a duration ("30s"). A
// list of strings is joined with commas for a flag that takes a
// comma-separated list, or set one by one for a repeatable flag.
func flagValues(f *flag.Flag, v any) ([]string, error) {
	var want any = ""
	if g, ok := f.Value.(flag.Getter); ok {
		want = g.Get()
	}
	switch want.(type) {
	case bool:
		if b, ok := v.(bool); ok {
			return []string{strconv.FormatBool(b)}, nil
		}
		return nil, fmt.Errorf("want true or false, not %s", tomlKind(v))
	case int, int64, uint, uint64:
		if i, ok := v.(int64); ok {
			return []string{strconv.FormatInt(i, 10)}, nil
		}
		return nil, fmt.Errorf("want a whole number, not %s", tomlKind(v))
	case float64:
		switch x := v.(type) {
		case int64:
			return []string{strconv.FormatInt(x, 10)}, nil
		case float64:
			return []string{strconv.FormatFloat(x, 'g', -1, 64)}, nil
		}
		return nil, fmt.Errorf("want a number, not %s", tomlKind(v))
	case time.Duration:
		if s, ok := v.(string); ok {
			if _, err := time.ParseDuration(s); err != nil {
				return nil, fmt.Errorf("want a duration such as \"30s\" or \"6h\", not %q", s)
			}
			return []string{s}, nil
		}
		return nil, fmt.Errorf("want a duration in quotes, such as \"30s\" or \"6h\", not %s", tomlKind(v))
	case string:
		switch x := v.(type) {
		case string:
			return []string{x}, nil
		case []any:
			var list []string
			for _, e := range x {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("want a list of strings, but it holds %s", tomlKind(e))
				}
				list = append(list, s)
			}
			if _, ok := f.Value.(flag.Getter); !ok {
				return list, nil // a repeatable flag
			}
			if strings.Contains(f.Usage, "comma-separated") {
				return []string{strings.Join(list, ",")}, nil
			}
			return nil, errors.New("want a string, not a list")
		}
		return nil, fmt.Errorf("want a string in quotes, not %s", tomlKind(v))
	}
	return nil, fmt.Errorf("flag --%s cannot be set from a file", f.Name)
}

func tomlKind(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", x)
	case bool:
		return fmt.Sprintf("%v", x)
	case int64, float64:
		return fmt.Sprintf("the number %v", x)
	case []any:
		return "a list"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("a %T", v)
}

// applyConfig sets the flags of fs, already parsed from the command line,
// that the config file sets and the command line does not. known holds
// every flag a file may set (ferry serve's); keys for flags fs lacks are
// checked but skipped, so that ferry status can read serve's file for the
// settings it shares. The file is --config, or DATA/ferry.toml when it
// exists.
func applyConfig(fs, known *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	path := fs.Lookup("config").Value.String()
	inData := path == ""
	if inData {
		path = filepath.Join(fs.Lookup("data").Value.String(), configName)
	}
	data, err := os.ReadFile(path)
	if inData && errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	settings, err := parseConfig(path, data, known)
	if err != nil {
		return err
	}
	for _, s := range settings {
		f := fs.Lookup(s.flag)
		if s.flag == "data" && inData {
			if s.value != f.Value.String() {
				return &configError{path: path, line: s.line, msg: "data: the data directory's own " + configName + " cannot move it; give --data, or keep the file elsewhere and give --config"}
			}
			continue
		}
		if f == nil || given[s.flag] {
			continue
		}
		vals, err := flagValues(f, s.value)
		if err != nil {
			return &configError{path: path, line: s.line, msg: fmt.Sprintf("%s: %v", s.key, err)}
		}
		for _, v := range vals {
			if err := f.Value.Set(v); err != nil {
				return &configError{path: path, line: s.line, msg: fmt.Sprintf("%s = %q: %v", s.key, v, err)}
			}
		}
	}
	return nil
}

// defaultConfig writes a config file holding every flag of known (but
// --config, --data, which the file's place gives, and one-letter aliases), each with its help as a comment and
// its default commented out; the keys in set are written with the given
// values, not commented. Flags sharing a first word with another ("sync-"
// in --sync-listen and --sync-every) go under a table of that name.
func defaultConfig(known *flag.FlagSet, header string, set map[string]string) string {
	prefixes := map[string]int{}
	var all []*flag.Flag
	known.VisitAll(func(f *flag.Flag) {
		if f.Name == "config" || f.Name == "data" || len(f.Name) == 1 {
			return
		}
		all = append(all, f)
		if p, _, ok := strings.Cut(f.Name, "-"); ok {
			prefixes[p]++
		}
	})
	type entry struct {
		table, key string
		f          *flag.Flag
	}
	var entries []entry
	for _, f := range all {
		e := entry{key: strings.ReplaceAll(f.Name, "-", "_"), f: f}
		if p, rest, ok := strings.Cut(f.Name, "-"); ok && prefixes[p] > 1 {
			e.table, e.key = p, strings.ReplaceAll(rest, "-", "_")
		}
		entries = append(entries, e)
	}
	slices.SortStableFunc(entries, func(a, b entry) int { return strings.Compare(a.table, b.table) })
	var b strings.Builder
	b.WriteString(header)
	table := ""
	for _, e := range entries {
		if e.table != table {
			table = e.table
			fmt.Fprintf(&b, "\n[%s]\n", table)
		} else {
			b.WriteString("\n")
		}
		for _, l := range wrap(e.f.Usage, 74) {
			fmt.Fprintf(&b, "# %s\n", l)
		}
		if v, ok := set[e.f.Name]; ok {
			fmt.Fprintf(&b, "%s = %s\n", e.key, tomlValue(e.f, v))
		} else {
			fmt.Fprintf(&b, "# %s = %s\n", e.key, tomlValue(e.f, e.f.DefValue))
		}
	}
	return b.String()
}

// tomlValue writes a flag's value as TOML: bare for switches and numbers,
// quoted otherwise.
func tomlValue(f *flag.Flag, v string) string {
	if g, ok := f.Value.(flag.Getter); ok {
		switch g.Get().(type) {
		case bool, int, int64, uint, uint64, float64:
			return v
		}
	}
	return strconv.Quote(v)
}

// wrap breaks text into lines of at most width runes, at spaces.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}
