package relational

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
)

// Shape is what a driver knows of a destination table: its columns and
// their types. It is a cache: a failed Apply drops every shape, and a
// batch with a column the shape does not list reloads it (Ensure).
type Shape struct {
	Target  string            // quoted schema.table
	Tomb    string            // quoted tombstone table
	HasTomb bool              // the tombstone table exists (the key is known)
	Types   map[string]string // column -> type as the catalog prints it
	Source  map[string]bool   // columns marked as written from the source
}

// Covers reports whether the shape has every column of cols and every
// bookkeeping column in required.
func (s *Shape) Covers(cols []contracts.Column, required ...string) bool {
	for _, c := range cols {
		if _, ok := s.Types[c.Name]; !ok {
			return false
		}
	}
	for _, r := range required {
		if _, ok := s.Types[r]; !ok {
			return false
		}
	}
	return true
}

// Has reports whether the table has column name.
func (s *Shape) Has(name string) bool {
	_, ok := s.Types[name]
	return ok
}

// Dialect is what Ensure needs from a driver, bound to the transaction
// (or connection) of one Apply and to one destination table. Each method
// is one statement or one catalog read in the destination's SQL; the
// order in which they run, and what is decided from their results, is
// Ensure's.
type Dialect interface {
	// LockDDL serializes schema changes of the destination (PostgreSQL:
	// an advisory lock) so that what Columns reads stays true until the
	// DDL runs; a no-op where one writer owns the database.
	LockDDL(ctx context.Context) error
	// Columns reads the table's columns and types; none when it is missing.
	Columns(ctx context.Context) (map[string]string, error)
	// PrimaryKey reads the stored table's key columns in key order.
	PrimaryKey(ctx context.Context) ([]string, error)
	// CreateTableDDL creates the schema and the table with cols, the
	// version columns and the key.
	CreateTableDDL(cols []contracts.Column) []string
	// RenameColumns renames destination columns the source renamed and
	// returns the DDL it ran.
	RenameColumns(ctx context.Context, types map[string]string, cols []contracts.Column) ([]string, error)
	// AddColumnDDL adds c, which types lacks (an error the same batch
	// always hits is permanent).
	AddColumnDDL(c contracts.Column, types map[string]string) ([]string, error)
	// VersionDDL adds the version columns an older table lacks.
	VersionDDL(ctx context.Context, types map[string]string) ([]string, error)
	// BookkeepingDDL creates the bookkeeping schema and registry.
	BookkeepingDDL() []string
	// ExecDDL runs one statement of the above.
	ExecDDL(ctx context.Context, q string) error
	// MarkSourceColumns marks cols as written from the source and returns
	// every column so marked.
	MarkSourceColumns(ctx context.Context, cols []contracts.Column) (map[string]bool, error)
	// Finish runs what follows the DDL once the shape's columns are
	// known (PostgreSQL: the registry's collect floor; DuckDB: values of
	// added columns for existing rows).
	Finish(ctx context.Context, s *Shape) error
	// CreateTombstone creates the tombstone table s.Tomb keyed by keys.
	CreateTombstone(ctx context.Context, s *Shape, keys []string) error
	// Register records the table and its tombstone table in the registry.
	Register(ctx context.Context, tombName string) error
}

// Table names a destination table for Ensure.
type Table struct {
	Schema, Name string
	// Target and Tomb are the quoted names of the table and of its
	// tombstone table (named TombName).
	Target, Tomb, TombName string
	// Required are the bookkeeping columns a usable shape must have.
	Required []string
}

// Ensure returns the destination table's shape from cache, or creates the
// table, renames and adds columns, adds missing version columns and
// creates the bookkeeping so that the table takes b, then caches the
// shape under t.Name (once the key, and so the tombstone table, is
// known). It returns nil when b has no columns (a lone truncate) and the
// table does not exist.
func Ensure(ctx context.Context, cache map[string]*Shape, d Dialect, t Table, b cdc.TableBatch, log *slog.Logger) (*Shape, error) {
	if s, ok := cache[t.Name]; ok && s.Covers(b.Columns, t.Required...) {
		return s, nil
	}
	s := &Shape{Target: t.Target, Tomb: t.Tomb}
	qualified := t.Schema + "." + t.Name
	if err := d.LockDDL(ctx); err != nil {
		return nil, err
	}
	types, err := d.Columns(ctx)
	if err != nil {
		return nil, err
	}
	keys := b.KeyColumns()
	var ddl []string
	created := false
	switch {
	case len(types) == 0 && len(b.Columns) == 0:
		return nil, nil
	case len(types) == 0:
		ddl = append(ddl, d.CreateTableDDL(b.Columns)...)
		created = true
	default:
		renamed, err := d.RenameColumns(ctx, types, b.Columns)
		if err != nil {
			return nil, err
		}
		if len(renamed) > 0 {
			log.Info("renamed destination columns the source renamed", "table", qualified, "ddl", renamed)
		}
		for _, c := range b.Columns {
			if _, ok := types[c.Name]; ok {
				continue
			}
			add, err := d.AddColumnDDL(c, types)
			if err != nil {
				return nil, err
			}
			ddl = append(ddl, add...)
			log.Info("adding column to destination table", "table", qualified, "column", c.Name,
				"existing_rows_value", c.ExistingValue != "")
		}
		versions, err := d.VersionDDL(ctx, types)
		if err != nil {
			return nil, err
		}
		ddl = append(ddl, versions...)
		if len(keys) == 0 {
			// A lone truncate names no columns: the stored primary key
			// keys the tombstone table.
			if keys, err = d.PrimaryKey(ctx); err != nil {
				return nil, err
			}
		}
	}
	ddl = append(ddl, d.BookkeepingDDL()...)
	for _, q := range ddl {
		if err := d.ExecDDL(ctx, q); err != nil {
			return nil, fmt.Errorf("prepare destination table: %w", err)
		}
	}
	if s.Types, err = d.Columns(ctx); err != nil {
		return nil, err
	}
	if s.Source, err = d.MarkSourceColumns(ctx, b.Columns); err != nil {
		return nil, err
	}
	if err := d.Finish(ctx, s); err != nil {
		return nil, err
	}
	if created {
		log.Info("created destination table", "table", qualified)
	}
	if len(keys) > 0 {
		if err := d.CreateTombstone(ctx, s, keys); err != nil {
			return nil, fmt.Errorf("create tombstone table: %w", err)
		}
		s.HasTomb = true
	}
	if err := d.Register(ctx, t.TombName); err != nil {
		return nil, fmt.Errorf("register destination table: %w", err)
	}
	if !s.Covers(b.Columns, t.Required...) {
		return nil, fmt.Errorf("destination table %s lacks columns after adding them", t.Target)
	}
	if s.HasTomb {
		cache[t.Name] = s
	}
	return s, nil
}
