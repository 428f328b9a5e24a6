package contracts

import (
	"fmt"
	"strings"
)

// Table is a schema-qualified source table name, case-sensitive as the
// source's catalog stores it. It is the one (schema, table) type of the
// wire format and of everything that names a source table: subjects,
// consumers' filters, publications, pipelines' table lists.
type Table struct {
	Schema string
	Name   string
}

// String is "schema.name", for lists, logs and errors (not for SQL).
func (t Table) String() string { return t.Schema + "." + t.Name }

// ParseTable parses "schema.table", the form pipelines list tables in.
// Names are taken as written (no case folding); a schema name holds no
// dot, and neither may the table name, so the split is never a guess.
func ParseTable(s string) (Table, error) {
	schema, name, ok := strings.Cut(s, ".")
	switch {
	case !ok || schema == "" || name == "":
		return Table{}, fmt.Errorf("%q is not a schema-qualified table name: write it as schema.table, e.g. public.orders", s)
	case strings.Contains(name, "."):
		return Table{}, fmt.Errorf("%q has more than one dot: write it as schema.table", s)
	case strings.TrimSpace(s) != s:
		return Table{}, fmt.Errorf("%q has leading or trailing spaces", s)
	}
	return Table{Schema: schema, Name: name}, nil
}
