// Package cdctest builds change events for the tests of destination
// drivers, so that every driver is exercised with the same events.
package cdctest

import (
	"encoding/json"
	"fmt"

	"github.com/rosettacdc/rosetta/contracts"
)

// ItemColumns is the source table most driver tests use: an integer key,
// a name, and a column that updates leave unchanged (a TOASTed value).
var ItemColumns = []contracts.Column{
	{Name: "id", Type: "integer", BaseType: "integer", Key: true},
	{Name: "name", Type: "text", BaseType: "text"},
	{Name: "big", Type: "text", BaseType: "text"},
}

// Events builds change events of one table of schema "app" of source 1;
// lsn and seq order them.
type Events struct {
	Table   string
	Columns []contracts.Column
}

// Change builds any change; key, before and after are JSON objects ("" for
// none).
func (e Events) Change(op contracts.Op, lsn uint64, seq int64, key, before, after string, unchanged ...string) contracts.Change {
	return contracts.Change{
		V:  contracts.EnvelopeVersion,
		Op: op,
		Source: contracts.Source{SourceID: 1, Schema: "app", Table: e.Table,
			CommitLSN: contracts.FormatLSN(lsn), Seq: seq},
		Columns:   e.Columns,
		Key:       row(key),
		Before:    row(before),
		After:     row(after),
		Unchanged: unchanged,
	}
}

// Ins inserts an ItemColumns row with a NULL big.
func (e Events) Ins(lsn uint64, id int, name string) contracts.Change {
	return e.Change(contracts.OpCreate, lsn, 1, fmt.Sprintf(`{"id":%d}`, id), "",
		fmt.Sprintf(`{"id":%d,"name":%q,"big":null}`, id, name))
}

// Upd updates the name of an ItemColumns row, leaving big unchanged.
func (e Events) Upd(lsn uint64, id int, name string) contracts.Change {
	return e.Change(contracts.OpUpdate, lsn, 1, fmt.Sprintf(`{"id":%d}`, id), "",
		fmt.Sprintf(`{"id":%d,"name":%q}`, id, name), "big")
}

// Del deletes an ItemColumns row.
func (e Events) Del(lsn uint64, id int) contracts.Change {
	return e.Change(contracts.OpDelete, lsn, 1, fmt.Sprintf(`{"id":%d}`, id), "", "")
}

// Truncate truncates the table.
func (e Events) Truncate(lsn uint64) contracts.Change {
	return contracts.Change{V: contracts.EnvelopeVersion, Op: contracts.OpTruncate,
		Source: contracts.Source{SourceID: 1, Schema: "app", Table: e.Table, CommitLSN: contracts.FormatLSN(lsn), Seq: 1}}
}

func row(s string) contracts.Row {
	if s == "" {
		return nil
	}
	var r contracts.Row
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		panic(fmt.Sprintf("cdctest: row %s: %v", s, err))
	}
	return r
}
