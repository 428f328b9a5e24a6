package api

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rosettacdc/rosetta/services/sink/drivers/builtin"
	"github.com/rosettacdc/rosetta/services/sink/drivers/desttype"
)

// destinationConfigSchemas names the openapi.yaml schema of each
// destination type's config.
var destinationConfigSchemas = map[string]string{
	"postgres":  "PostgresDestinationConfig",
	"snowflake": "SnowflakeDestinationConfig",
	"duckdb":    "DuckDBDestinationConfig",
}

// specProperty is one property of an openapi.yaml schema, written as a
// flow map on one line: its keys and their values as written (a list
// without its brackets, a string without its quotes).
type specProperty map[string]string

// schemaDetail returns the required list and the properties, in order, of
// components.schemas.<name>, whose properties are flow maps of one line.
func schemaDetail(t *testing.T, lines []string, name string) (required []string, names []string, props map[string]specProperty) {
	t.Helper()
	props = map[string]specProperty{}
	propRe := regexp.MustCompile(`^        ([a-z_]+): \{ (.*) \}$`)
	for _, l := range schemaBlock(lines, name) {
		switch {
		case strings.HasPrefix(l, "      required: ["):
			required = splitFlow(strings.TrimSuffix(strings.TrimPrefix(l, "      required: ["), "]"))
		case propRe.MatchString(l):
			m := propRe.FindStringSubmatch(l)
			p := specProperty{}
			for _, kv := range splitFlow(m[2]) {
				k, v, ok := strings.Cut(kv, ": ")
				if !ok {
					t.Fatalf("openapi.yaml %s.%s: cannot read %q", name, m[1], kv)
				}
				p[k] = strings.Trim(strings.TrimSuffix(strings.TrimPrefix(v, "["), "]"), `"`)
			}
			names = append(names, m[1])
			props[m[1]] = p
		case strings.HasPrefix(l, "        ") && !strings.HasPrefix(l, "         ") && strings.Contains(l, ":"):
			t.Fatalf("openapi.yaml %s: property %q is not a one-line flow map, which this test reads", name, l)
		}
	}
	return required, names, props
}

// splitFlow splits YAML flow content at its top-level commas, outside
// double quotes and brackets.
func splitFlow(s string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
		case quoted:
		case r == '[':
			depth++
		case r == ']':
			depth--
		case r == ',' && depth == 0:
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	if rest := strings.TrimSpace(s[start:]); rest != "" {
		out = append(out, rest)
	}
	return out
}

// TestDestinationTypesMatchOpenAPI holds contracts/openapi.yaml's
// destination config schemas to the types' field specs: names in order,
// required, secret as writeOnly, kinds as types and bounds, enums and
// defaults.
func TestDestinationTypesMatchOpenAPI(t *testing.T) {
	t.Parallel()
	spec := readSpec(t)
	kinds := map[desttype.Kind]specProperty{
		desttype.String:    {"type": "string"},
		desttype.Duration:  {"type": "string"},
		desttype.Bool:      {"type": "boolean"},
		desttype.Port:      {"type": "integer", "minimum": "1", "maximum": "65535"},
		desttype.BatchSize: {"type": "integer", "minimum": "1", "maximum": fmt.Sprint(desttype.MaxBatchSize)},
	}
	for _, typ := range builtin.Types() {
		schema, ok := destinationConfigSchemas[typ.Name]
		if !ok {
			t.Errorf("destination type %s has no config schema in contracts/openapi.yaml (add it and name it in destinationConfigSchemas)", typ.Name)
			continue
		}
		required, names, props := schemaDetail(t, spec, schema)
		var wantNames, wantRequired []string
		for _, f := range typ.Fields {
			wantNames = append(wantNames, f.Name)
			if f.Required {
				wantRequired = append(wantRequired, f.Name)
			}
		}
		if strings.Join(names, ",") != strings.Join(wantNames, ",") {
			t.Errorf("openapi.yaml %s properties = %v, the %s type's fields are %v", schema, names, typ.Name, wantNames)
		}
		if strings.Join(required, ",") != strings.Join(wantRequired, ",") {
			t.Errorf("openapi.yaml %s required = %v, the %s type requires %v", schema, required, typ.Name, wantRequired)
		}
		for _, f := range typ.Fields {
			p, ok := props[f.Name]
			if !ok {
				continue
			}
			where := schema + "." + f.Name
			for k, v := range kinds[f.Kind] {
				if p[k] != v {
					t.Errorf("openapi.yaml %s: %s is %q, a %s field has %q", where, k, p[k], f.Kind, v)
				}
			}
			if got := p["writeOnly"] == "true"; got != f.Secret {
				t.Errorf("openapi.yaml %s: writeOnly is %v, the field's Secret is %v", where, got, f.Secret)
			}
			if got, want := p["enum"], strings.Join(f.OneOf, ", "); got != want {
				t.Errorf("openapi.yaml %s: enum is [%s], the field's OneOf is [%s]", where, got, want)
			}
			want := ""
			if f.Default != nil {
				want = fmt.Sprint(f.Default)
			}
			if got := p["default"]; got != want {
				t.Errorf("openapi.yaml %s: default is %q, the field's Default is %q", where, got, want)
			}
		}
	}
}

// TestDestinationTypesMatchDocs holds the configuration tables of
// docs/snowflake.md and docs/duckdb.md to the types' fields: every field,
// and no other, in the first column; in duckdb.md's default column the
// field's Default, or the default its Doc states.
func TestDestinationTypesMatchDocs(t *testing.T) {
	t.Parallel()
	types := builtin.Types()
	for _, doc := range []struct{ typ, file string }{{"snowflake", "snowflake.md"}, {"duckdb", "duckdb.md"}} {
		typ, ok := types.Lookup(doc.typ)
		if !ok {
			t.Fatalf("no destination type %s", doc.typ)
		}
		rows := configTable(t, "../../docs/"+doc.file)
		var got, want []string
		for _, f := range typ.Fields {
			want = append(want, f.Name)
		}
		for _, r := range rows {
			got = append(got, r.names...)
		}
		if strings.Join(sorted(got), ",") != strings.Join(sorted(want), ",") {
			t.Errorf("docs/%s configuration table lists %v, the %s type's fields are %v", doc.file, got, typ.Name, want)
		}
		if doc.typ != "duckdb" {
			continue
		}
		for _, r := range rows {
			f, def := fieldNamed(typ.Fields, r.names[0]), r.cells[1]
			switch {
			case f.Name == "":
			case f.Required:
				if def != "(required)" {
					t.Errorf("docs/%s: %s is required, the table's default says %q", doc.file, f.Name, def)
				}
			case f.Default != nil:
				if def != "`"+fmt.Sprint(f.Default)+"`" {
					t.Errorf("docs/%s: %s defaults to %v, the table says %s", doc.file, f.Name, f.Default, def)
				}
			default:
				if !strings.Contains(f.Doc, "(default "+strings.Trim(def, "`")+")") {
					t.Errorf("docs/%s: %s defaults to %s in the table, its Doc says %q", doc.file, f.Name, def, f.Doc)
				}
			}
		}
	}
}

type configRow struct {
	names []string // the backquoted names of the first cell
	cells []string
}

// configTable reads the table under "## Configuration" of a doc.
func configTable(t *testing.T, path string) []configRow {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "\n## Configuration\n")
	if !ok {
		t.Fatalf("%s has no Configuration section", path)
	}
	nameRe := regexp.MustCompile("`([a-z_]+)`")
	var rows []configRow
	inTable := false
	for _, l := range strings.Split(after, "\n") {
		if !strings.HasPrefix(l, "|") {
			if inTable {
				break
			}
			continue
		}
		cells := strings.Split(strings.Trim(l, "|"), " | ")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if !inTable || strings.HasPrefix(cells[0], "---") {
			inTable = true // the header, then its rule
			continue
		}
		var names []string
		for _, m := range nameRe.FindAllStringSubmatch(cells[0], -1) {
			names = append(names, m[1])
		}
		rows = append(rows, configRow{names: names, cells: cells})
	}
	if len(rows) == 0 {
		t.Fatalf("%s: no configuration table", path)
	}
	return rows
}

func fieldNamed(fields []desttype.Field, name string) desttype.Field {
	for _, f := range fields {
		if f.Name == name {
			return f
		}
	}
	return desttype.Field{}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
