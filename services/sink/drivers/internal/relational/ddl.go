package relational

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/colmark"
)

// Exec runs one statement in the transaction of an Apply.
type Exec func(ctx context.Context, q string) error

// CreateTable creates a destination table with the version columns and the
// key as primary key.
func (x Syntax) CreateTable(target string, cols []Column) string {
	var defs, keys []string
	for _, c := range cols {
		defs = append(defs, x.Ident(c.Name)+" "+c.Type)
		if c.Key {
			keys = append(keys, x.Ident(c.Name))
		}
	}
	defs = append(defs, x.Ident(LSNCol)+" "+x.Bigint+" NOT NULL", x.Ident(SeqCol)+" "+x.Bigint+" NOT NULL", x.Ident(ColvCol)+" "+x.ColvType)
	if len(keys) > 0 {
		defs = append(defs, "PRIMARY KEY ("+strings.Join(keys, ", ")+")")
	}
	return "CREATE TABLE IF NOT EXISTS " + target + " (" + strings.Join(defs, ", ") + ")"
}

// CreateTableDDL creates the schema and the table target with the source
// columns cols (Dialect.CreateTableDDL).
func (x Syntax) CreateTableDDL(schema, target string, cols []contracts.Column) []string {
	defs := make([]Column, len(cols))
	for i, c := range cols {
		defs[i] = Column{Name: c.Name, Type: x.ColumnType(c.BaseType), Key: c.Key}
	}
	return []string{"CREATE SCHEMA IF NOT EXISTS " + x.Ident(schema), x.CreateTable(target, defs)}
}

// CreateTombstone creates a tombstone table keyed like its destination.
func (x Syntax) CreateTombstone(tomb string, keys []Column) string {
	var defs, names []string
	for _, k := range keys {
		defs = append(defs, x.Ident(k.Name)+" "+k.Type)
		names = append(names, x.Ident(k.Name))
	}
	defs = append(defs, x.Ident(LSNCol)+" "+x.Bigint+" NOT NULL", x.Ident(SeqCol)+" "+x.Bigint+" NOT NULL",
		"PRIMARY KEY ("+strings.Join(names, ", ")+")")
	return "CREATE TABLE IF NOT EXISTS " + tomb + " (" + strings.Join(defs, ", ") + ")"
}

// CreateTombstoneFor creates the tombstone table of a destination table
// whose columns have types, keyed by keys (Dialect.CreateTombstone).
func (x Syntax) CreateTombstoneFor(tomb string, keys []string, types map[string]string) string {
	defs := make([]Column, len(keys))
	for i, k := range keys {
		defs[i] = Column{Name: k, Type: types[k], Key: true}
	}
	return x.CreateTombstone(tomb, defs)
}

// AddColumn adds column c to target.
func (x Syntax) AddColumn(target string, c Column) string {
	return "ALTER TABLE " + target + " ADD COLUMN IF NOT EXISTS " + x.Ident(c.Name) + " " + c.Type
}

// AddVersion adopts a table that exists without version column col: its
// rows count as older than any change.
func (x Syntax) AddVersion(target, col string) string {
	return "ALTER TABLE " + target + " ADD COLUMN IF NOT EXISTS " + x.Ident(col) + " " + x.AdoptVersion
}

// AddVersions adopts a table lacking the version columns (types are its
// columns): the statements adding those it lacks.
func (x Syntax) AddVersions(target string, types map[string]string) []string {
	var ddl []string
	for _, v := range []string{LSNCol, SeqCol} {
		if _, ok := types[v]; !ok {
			ddl = append(ddl, x.AddVersion(target, v))
		}
	}
	return ddl
}

// AddColv adds the column-version record to a table created before column
// versions: every row's columns have the row's version.
func (x Syntax) AddColv(target string) string {
	return "ALTER TABLE " + target + " ADD COLUMN IF NOT EXISTS " + x.Ident(ColvCol) + " " + x.ColvType
}

// BookkeepingDDL creates the bookkeeping schema and the registry of
// destination tables, their tombstone tables and truncate watermarks.
func (x Syntax) BookkeepingDDL() []string {
	return []string{
		"CREATE SCHEMA IF NOT EXISTS " + x.Ident(BookkeepingSchema),
		"CREATE TABLE IF NOT EXISTS " + x.Ident(BookkeepingSchema, RegistryTable) + " (\n" +
			"\tschema_name " + x.Text + " NOT NULL,\n" +
			"\ttable_name " + x.Text + " NOT NULL,\n" +
			"\ttombstone_table " + x.Text + " NOT NULL UNIQUE,\n" +
			"\ttruncate_lsn " + x.Bigint + " NOT NULL DEFAULT 0,\n" +
			"\ttruncate_seq " + x.Bigint + " NOT NULL DEFAULT 0,\n" +
			"\tPRIMARY KEY (schema_name, table_name))",
	}
}

// CollectFloorDDL adds the collect floor (tombstone collection) to a
// registry created before it.
func (x Syntax) CollectFloorDDL() []string {
	return []string{
		"ALTER TABLE " + x.Ident(BookkeepingSchema, RegistryTable) + " ADD COLUMN IF NOT EXISTS collect_lsn " + x.AdoptVersion,
		"ALTER TABLE " + x.Ident(BookkeepingSchema, RegistryTable) + " ADD COLUMN IF NOT EXISTS collect_seq " + x.AdoptVersion,
	}
}

// WidenColumns changes the type of destination columns whose source column
// was widened (Syntax.Widens) to the type the source's now maps to, in the
// batch's transaction, before the batch is staged: the values the column
// holds keep their meaning, and the batch's values, written in the new
// type, arrive exactly. Key columns are left alone (the tombstone table
// repeats their type). lock, when set, runs before the first statement. It
// returns the statements it ran.
func (x Syntax) WidenColumns(ctx context.Context, exec Exec, lock func(context.Context) error, target string, types map[string]string,
	cols []contracts.Column) ([]string, error) {
	var ddl []string
	for _, c := range cols {
		dest, ok := types[c.Name]
		if !ok || c.Key {
			continue
		}
		if sent := x.ColumnType(c.BaseType); x.Widens(dest, sent) {
			ddl = append(ddl, "ALTER TABLE "+target+" ALTER COLUMN "+x.Ident(c.Name)+" TYPE "+sent)
		}
	}
	if len(ddl) == 0 {
		return nil, nil
	}
	if lock != nil {
		if err := lock(ctx); err != nil {
			return nil, err
		}
	}
	for _, q := range ddl {
		if err := exec(ctx, q); err != nil {
			return nil, fmt.Errorf("widen destination column: %w", err)
		}
	}
	return ddl, nil
}

// RenameColumns renames the destination columns whose source column was
// renamed: a column of cols (the newest change's list) the destination
// lacks, whose attnum a marked destination column carries, whose name cols
// no longer lists, and whose type is the one that column has
// (colmark.Renames). It runs in the batch's transaction, before missing
// columns are added, so the rows the destination holds keep their values
// under the new name instead of a new, NULL column appearing beside the
// old one. comments reads the columns' comments ("" for none) only when
// some column may have been renamed. types is updated to the renamed
// columns. It returns the statements run.
func (x Syntax) RenameColumns(ctx context.Context, exec Exec, comments func(context.Context) (map[string]string, error), target string,
	types map[string]string, cols []contracts.Column) ([]string, error) {
	if !slices.ContainsFunc(cols, func(c contracts.Column) bool { _, ok := types[c.Name]; return !ok && c.Attnum > 0 && !c.Key }) {
		return nil, nil
	}
	marks, err := comments(ctx)
	if err != nil {
		return nil, err
	}
	var ddl []string
	for _, r := range colmark.Renames(marks, types, cols, func(c contracts.Column) string { return x.ColumnType(c.BaseType) }) {
		q := "ALTER TABLE " + target + " RENAME COLUMN " + x.Ident(r.Old) + " TO " + x.Ident(r.New)
		if err := exec(ctx, q); err != nil {
			return nil, fmt.Errorf("rename destination column %q to %q: %w", r.Old, r.New, err)
		}
		ddl = append(ddl, q)
		types[r.New] = types[r.Old]
		delete(types, r.Old)
	}
	return ddl, nil
}

// DropColumns applies the "drop" policy (colmark.DroppedDrop): the
// destination columns whose source column was dropped go too, in the
// batch's transaction, before its rows are staged. lock, when set, runs
// first. It returns the statements run.
func (x Syntax) DropColumns(ctx context.Context, exec Exec, lock func(context.Context) error, target string, names []string) ([]string, error) {
	if lock != nil {
		if err := lock(ctx); err != nil {
			return nil, err
		}
	}
	ddl := make([]string, len(names))
	for i, n := range names {
		ddl[i] = "ALTER TABLE " + target + " DROP COLUMN IF EXISTS " + x.Ident(n)
		if err := exec(ctx, ddl[i]); err != nil {
			return nil, fmt.Errorf("drop destination column %q: %w", n, err)
		}
	}
	return ddl, nil
}
