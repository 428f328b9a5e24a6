package snowflake

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	sf "github.com/snowflakedb/gosnowflake"

	"github.com/rosettacdc/rosetta/pkg/cdc"
)

// mapColumns gives each column of the batch its Snowflake name and the type
// a new column gets, rejecting reserved names and names that collide once
// mapped.
func mapColumns(b cdc.TableBatch) ([]stageColumn, error) {
	cols := make([]stageColumn, 0, len(b.Columns))
	seen := map[string]string{}
	for _, c := range b.Columns {
		if err := checkSourceName("column", c.Name); err != nil {
			return nil, err
		}
		name := destName(c.Name)
		if other, dup := seen[name]; dup {
			return nil, fmt.Errorf("columns %q and %q both map to the Snowflake column %s", other, c.Name, ident(name))
		}
		seen[name] = c.Name
		base := c.BaseType
		if base == "" {
			base = c.Type
		}
		cols = append(cols, stageColumn{source: c.Name, name: name, base: base, typ: mapType(base), key: c.Key, attnum: c.Attnum})
	}
	return cols, nil
}

// ensureTable returns the destination table's state, creating the table,
// adding missing columns and creating its tombstone table when the cache
// does not already show everything the batch needs. DDL is idempotent (IF
// NOT EXISTS), so sinks of several pipelines sharing a destination may run
// it concurrently. A batch without columns (a lone truncate) of a table
// that does not exist gets a state with exists false.
func (d *Driver) ensureTable(ctx context.Context, conn *sql.Conn, table string, cols []stageColumn, existing map[string]string) (*tableState, error) {
	if st, ok := d.tables[table]; ok && st.covers(cols, d.cfg.SoftDelete) && len(st.widenings(cols)) == 0 {
		return st, nil
	}
	target := qualified(d.cfg.database, d.cfg.schema, table)
	st, err := d.loadTable(ctx, conn, target, table)
	if err != nil {
		return nil, err
	}
	reload := false
	var ddl []string
	switch {
	case !st.exists && len(cols) == 0:
		return st, nil
	case !st.exists:
		ddl = append(ddl, createTableSQL(target, cols, d.cfg.SoftDelete))
		d.log.Info("creating destination table", "table", table)
	default:
		renamed, err := d.renameColumns(ctx, conn, target, st, cols)
		if len(renamed) > 0 {
			reload = true
			d.log.Info("renamed destination columns the source renamed", "table", table, "ddl", renamed)
		}
		if err != nil {
			return nil, err
		}
		for _, c := range cols {
			if _, ok := st.types[c.name]; !ok {
				if _, foreign := st.foreign[c.name]; !foreign {
					add, filled, err := addColumnDDL(target, table, c, existing)
					if err != nil {
						return nil, err
					}
					ddl = append(ddl, add...)
					_, hasValue := existing[c.name]
					d.log.Info("adding column to destination table", "table", table, "column", c.name, "existing_rows_value", filled)
					if hasValue && !filled {
						d.log.Warn("rows already in the destination table keep NULL in the added column: a "+c.typ.sql()+
							" column cannot take the value they hold at the source as its default; backfill the table to send them",
							"table", table, "column", c.name)
					}
				}
			}
		}
		bookkeeping := []string{lsnCol, seqCol, colvCol}
		if d.cfg.SoftDelete {
			bookkeeping = append(bookkeeping, deletedCol)
		}
		for _, name := range bookkeeping {
			if _, ok := st.types[name]; !ok {
				ddl = append(ddl, addBookkeepingColumnSQL(target, name))
			}
		}
		if items := st.widenings(cols); len(items) > 0 {
			// One statement for every widened column of the table.
			ddl = append(ddl, alterColumnsSQL(target, items))
			d.log.Info("widening destination columns to the source's types", "table", table, "columns", items)
		}
	}
	for _, q := range ddl {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("prepare destination table: %w", err)
		}
	}
	if len(ddl) > 0 || reload {
		if st, err = d.loadTable(ctx, conn, target, table); err != nil {
			return nil, err
		}
	}
	switch {
	case !st.exists:
		// Snowflake answers "does not exist or not authorized" alike.
		return nil, fmt.Errorf("destination table %s is not visible to the role even after CREATE TABLE IF NOT EXISTS: "+
			"grant the role ownership of it, or SELECT, INSERT, UPDATE and DELETE", target)
	case !st.covers(cols, d.cfg.SoftDelete):
		return nil, fmt.Errorf("destination table %s lacks columns after adding them", target)
	}
	if err := d.markSourceColumns(ctx, conn, target, table, st, cols); err != nil {
		return nil, err
	}
	tomb := qualified(d.cfg.database, d.cfg.schema, tombPrefix+table)
	var keys []stageColumn
	for _, c := range cols {
		if c.key {
			c.typ = st.types[c.name]
			keys = append(keys, c)
		}
	}
	switch {
	case d.cfg.SoftDelete:
	case len(keys) > 0:
		if _, err := conn.ExecContext(ctx, createTombSQL(tomb, keys, keysNullable(cols))); err != nil {
			return nil, fmt.Errorf("create tombstone table: %w", err)
		}
		st.hasTomb = true
	default:
		// A lone truncate names no key: the tombstones exist only if an
		// earlier batch created them.
		t, err := describe(ctx, conn, tomb)
		if err != nil {
			return nil, err
		}
		st.hasTomb = t.exists
	}
	d.tables[table] = st
	return st, nil
}

// describe reads a table's columns from the metadata of an empty query.
func describe(ctx context.Context, conn *sql.Conn, name string) (*tableState, error) {
	st := &tableState{types: map[string]colType{}, foreign: map[string]string{}}
	rows, err := conn.QueryContext(ctx, "SELECT * FROM "+name+" LIMIT 0")
	if err != nil {
		var se *sf.SnowflakeError
		if errors.As(err, &se) && se.Number == 2003 { // does not exist or not authorized
			return st, nil
		}
		return nil, fmt.Errorf("read columns of %s: %w", name, err)
	}
	defer rows.Close()
	cts, err := rows.ColumnTypes()
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", name, err)
	}
	st.exists = true
	for _, ct := range cts {
		p, s, _ := ct.DecimalSize()
		l, _ := ct.Length()
		t, ok := typeFromResult(ct.DatabaseTypeName(), p, s, l)
		if !ok {
			st.foreign[ct.Name()] = ct.DatabaseTypeName()
			continue
		}
		st.types[ct.Name()] = t
	}
	_, st.hasDeleted = st.types[deletedCol]
	return st, nil
}

func (s *tableState) covers(cols []stageColumn, soft bool) bool {
	if !s.exists {
		return len(cols) == 0
	}
	for _, c := range cols {
		_, ok := s.types[c.name]
		_, foreign := s.foreign[c.name]
		if !ok && !foreign {
			return false
		}
	}
	_, lsn := s.types[lsnCol]
	_, seq := s.types[seqCol]
	_, colv := s.types[colvCol]
	return lsn && seq && colv && (!soft || s.hasDeleted)
}
