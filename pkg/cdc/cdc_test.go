package cdc

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/rosettacdc/rosetta/contracts"
)

var (
	colsT = []contracts.Column{
		{Name: "id", Type: "integer", BaseType: "integer", Key: true},
		{Name: "name", Type: "text", BaseType: "text"},
		{Name: "big", Type: "text", BaseType: "text"},
	}
	refT = contracts.Table{Schema: "public", Name: "t"}
)

func row(js string) contracts.Row {
	if js == "" {
		return nil
	}
	var r contracts.Row
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		panic(err)
	}
	return r
}

// change builds a change of public.t at commit LSN 0/<lsn>.
func change(op contracts.Op, lsn string, seq int64, key, before, after string, unchanged ...string) contracts.Change {
	return contracts.Change{
		V:         contracts.EnvelopeVersion,
		Op:        op,
		Source:    contracts.Source{SourceID: 1, Schema: "public", Table: "t", CommitLSN: "0/" + lsn, Seq: seq},
		Columns:   colsT,
		Key:       row(key),
		Before:    row(before),
		After:     row(after),
		Unchanged: unchanged,
	}
}

func txt(s string) Value { return Value{Text: s} }

func ver(lsn uint64, seq int64) contracts.Version { return contracts.Version{LSN: lsn, Seq: seq} }

func ptrVer(lsn uint64, seq int64) *contracts.Version { v := ver(lsn, seq); return &v }

func vals(kv ...string) map[string]Value {
	m := map[string]Value{}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "<null>" {
			m[kv[i]] = Value{Null: true}
			continue
		}
		m[kv[i]] = txt(kv[i+1])
	}
	return m
}

func TestCollapse(t *testing.T) {
	t.Parallel()
	const (
		c = contracts.OpCreate
		u = contracts.OpUpdate
		d = contracts.OpDelete
		r = contracts.OpRead
	)
	tests := []struct {
		name    string
		changes []contracts.Change
		want    []TableBatch
	}{
		{
			name: "insert then update keeps the final row and version",
			changes: []contracts.Change{
				change(c, "10", 1, `{"id":1}`, ``, `{"id":1,"name":"a","big":"x"}`),
				change(u, "11", 1, `{"id":1}`, ``, `{"id":1,"name":"b","big":"y"}`),
			},
			want: []TableBatch{{Table: refT, Columns: colsT, Rows: []RowChange{
				{Key: []Value{txt("1")}, Values: vals("id", "1", "name", "b", "big", "y"), Version: ver(0x11, 1)},
			}}},
		},
		{
			// A redelivered message (sink killed before its ack) arrives
			// after newer ones in the same fetch; the newest version wins.
			name: "an older change redelivered behind a newer one does not win",
			changes: []contracts.Change{
				change(u, "20", 1, `{"id":1}`, ``, `{"id":1,"name":"new","big":"y"}`),
				change(u, "11", 1, `{"id":1}`, ``, `{"id":1,"name":"old","big":"x"}`),
				change(c, "10", 1, `{"id":1}`, ``, `{"id":1,"name":"first","big":"x"}`),
			},
			want: []TableBatch{{Table: refT, Columns: colsT, Rows: []RowChange{
				{Key: []Value{txt("1")}, Values: vals("id", "1", "name", "new", "big", "y"), Version: ver(0x20, 1)},
			}}},
		},
		{
			name: "a redelivered insert behind a delete does not resurrect the row",
			changes: []contracts.Change{
				change(d, "30", 1, `{"id":1}`, ``, ``),
				change(c, "10", 1, `{"id":1}`, ``, `{"id":1,"name":"a","big":"x"}`),
			},
			want: []TableBatch{{Table: refT, Columns: colsT, Rows: []RowChange{
				{Delete: true, Key: []Value{txt("1")}, Version: ver(0x30, 1)},
			}}},
		},
		{
			name: "insert then delete is a delete",
			changes: []contracts.Change{
				change(c, "10", 1, `{"id":1}`, ``, `{"id":1,"name":"a","big":"x"}`),
				change(d, "10", 2, `{"id":1}`, ``, ``),
			},
			want: []TableBatch{{Table: refT, Columns: colsT, Rows: []RowChange{
				{Delete: true, Key: []Value{txt("1")}, Version: ver(0x10, 2)},
			}}},
		},
		{
			name: "delete then insert again is an upsert",
			changes: []contracts.Change{
				change(d, "10", 1, `{"id":1}`, ``, ``),
				change(c, "10", 2, `{"id":1}`, ``, `{"id":1,"name":"n","big":null}`),
			},
			want: []TableBatch{{Table: refT, Columns: colsT, Rows: []RowChange{
				{Key: []Value{txt("1")}, Values: vals("id", "1", "name", "n", "big", "<null>"), Version: ver(0x10, 2), Floor: ptrVer(0x10, 1)},
			}}},
		},
		{
			name: "unchanged column alone stays unchanged",
			changes: []contracts.Change{
				change(u, "10", 1, `{"id":1}`, ``, `{"id":1,"name":"b"}`, "big"),
			},
			want: []TableBatch{{Table: refT, Columns: colsT, Rows: []RowChange{
				{Key: []Value{txt("1")}, Values: vals("id", "1", "name", "b"), Unchanged: []string{"big"}, Version: ver(0x10, 1)},
			}}},
		},
		{
			name: "unchanged column after an insert in the batch takes the inserted value",
			changes: []contracts.Change{
				change(c, "10", 1, `{"id":1}`, ``, `{"id":1,"name":"a","big":"x"}`),
				change(u, "12", 1, `{"id":1}`, ``, `{"id":1,"name":"b"}`, "big"),
			},
			want: []TableBatch{{Table: refT, Columns: colsT, Rows: []RowChange{
				{Key: []Value{txt("1")}, Values: vals("id", "1", "name", "b", "big", "x"), Version: ver(0x12, 1),
					ColVersions: map[string]contracts.Version{"big": ver(0x10, 1)}},
			}}},
		},
		{
			name: "two updates with unchanged columns stay unchanged",
			changes: []contracts.Change{
				change(u, "10", 1, `{"id":1}`, ``, `{"id":1,"name":"a"}`, "big"),
				change(u, "11", 1, `{"id":1}`, ``, `{"id":1,"name":"b"}`, "big"),
			},
			want: []TableBatch{{Table: refT, Columns: colsT, Rows: []RowChange{
				{Key: []Value{txt("1")}, Values: vals("id", "1", "name", "b"), Unchanged: []string{"big"}, Version: ver(0x11, 1)},
			}}},
		},
		{
			name: "unchanged column under replica identity full comes from before",
			changes: []contracts.Change{
				change(u, "10", 1, `{"id":1}`, `{"id":1,"name":"a","big":"x"}`, `{"id":1,"name":"b"}`, "big"),
			},
			want: []TableBatch{{Table: refT, Columns: colsT, Rows: []RowChange{
				{Key: []Value{txt("1")}, Values: vals("id", "1", "name", "b", "big", "x"), Version: ver(0x10, 1)},
			}}},
		},
		{
			name: "key change is a delete of the old key and an upsert of the new",
			changes: []contracts.Change{
				change(u, "10", 1, `{"id":2}`, `{"id":1}`, `{"id":2,"name":"a","big":"x"}`),
			},
			want: []TableBatch{{Table: refT, Columns: colsT, Rows: []RowChange{
				{Delete: true, Key: []Value{txt("1")}, Version: ver(0x10, 1)},
				{Key: []Value{txt("2")}, Values: vals("id", "2", "name", "a", "big", "x"), Version: ver(0x10, 1)},
			}}},
		},
		{
			name: "key change with an unchanged column falls back to the old key",
			changes: []contracts.Change{
				change(u, "10", 1, `{"id":2}`, `{"id":1}`, `{"id":2,"name":"a"}`, "big"),
			},
			want: []TableBatch{{Table: refT, Columns: colsT, Rows: []RowChange{
				{Delete: true, Key: []Value{txt("1")}, Version: ver(0x10, 1)},
				{Key: []Value{txt("2")}, Values: vals("id", "2", "name", "a"), Unchanged: []string{"big"}, FallbackKey: []Value{txt("1")}, Version: ver(0x10, 1),
					Moved: map[string]MovedColumn{"big": {Move: ver(0x10, 1), From: []Value{txt("1")}}}},
			}}},
		},
		{
			name: "two key changes fall back to the first key",
			changes: []contracts.Change{
				change(u, "10", 1, `{"id":2}`, `{"id":1}`, `{"id":2,"name":"a"}`, "big"),
				change(u, "11", 1, `{"id":3}`, `{"id":2}`, `{"id":3,"name":"b"}`, "big"),
			},
			want: []TableBatch{{Table: refT, Columns: colsT, Rows: []RowChange{
				{Delete: true, Key: []Value{txt("1")}, Version: ver(0x10, 1)},
				{Delete: true, Key: []Value{txt("2")}, Version: ver(0x11, 1)},
				{Key: []Value{txt("3")}, Values: vals("id", "3", "name", "b"), Unchanged: []string{"big"}, FallbackKey: []Value{txt("1")}, Version: ver(0x11, 1),
					Moved: map[string]MovedColumn{"big": {Move: ver(0x10, 1), From: []Value{txt("1")}}}},
			}}},
		},
		{
			name: "update of the same key then key change falls back to the stored row",
			changes: []contracts.Change{
				change(u, "10", 1, `{"id":1}`, ``, `{"id":1,"name":"a"}`, "big"),
				change(u, "11", 1, `{"id":2}`, `{"id":1}`, `{"id":2,"name":"b"}`, "big"),
			},
			want: []TableBatch{{Table: refT, Columns: colsT, Rows: []RowChange{
				{Delete: true, Key: []Value{txt("1")}, Version: ver(0x11, 1)},
				{Key: []Value{txt("2")}, Values: vals("id", "2", "name", "b"), Unchanged: []string{"big"}, FallbackKey: []Value{txt("1")}, Version: ver(0x11, 1),
					Moved: map[string]MovedColumn{"big": {Move: ver(0x11, 1), From: []Value{txt("1")}}}},
			}}},
		},
		{
			name: "key change after an insert carries the values",
			changes: []contracts.Change{
				change(c, "10", 1, `{"id":1}`, ``, `{"id":1,"name":"a","big":"x"}`),
				change(u, "11", 1, `{"id":2}`, `{"id":1}`, `{"id":2,"name":"b"}`, "big"),
			},
			want: []TableBatch{{Table: refT, Columns: colsT, Rows: []RowChange{
				{Delete: true, Key: []Value{txt("1")}, Version: ver(0x11, 1)},
				{Key: []Value{txt("2")}, Values: vals("id", "2", "name", "b", "big", "x"), Version: ver(0x11, 1), FallbackKey: []Value{txt("1")},
					Moved: map[string]MovedColumn{"big": {Version: ver(0x10, 1), Move: ver(0x11, 1), From: []Value{txt("1")}}}},
			}}},
		},
		{
			name: "changes before a truncate are dropped",
			changes: []contracts.Change{
				change(c, "10", 1, `{"id":1}`, ``, `{"id":1,"name":"a","big":"x"}`),
				{Op: contracts.OpTruncate, Source: contracts.Source{Schema: "public", Table: "t", CommitLSN: "0/11", Seq: 1}},
				change(c, "12", 1, `{"id":2}`, ``, `{"id":2,"name":"b","big":"y"}`),
			},
			want: []TableBatch{{Table: refT, Columns: colsT, Truncate: &contracts.Version{LSN: 0x11, Seq: 1}, Rows: []RowChange{
				{Key: []Value{txt("2")}, Values: vals("id", "2", "name", "b", "big", "y"), Version: ver(0x12, 1)},
			}}},
		},
		{
			name: "the newest of two truncates wins",
			changes: []contracts.Change{
				{Op: contracts.OpTruncate, Source: contracts.Source{Schema: "public", Table: "t", CommitLSN: "0/11", Seq: 1}},
				change(r, "12", 1, `{"id":2}`, ``, `{"id":2,"name":"b","big":"y"}`),
				{Op: contracts.OpTruncate, Source: contracts.Source{Schema: "public", Table: "t", CommitLSN: "0/13", Seq: 1}},
			},
			want: []TableBatch{{Table: refT, Columns: colsT, Truncate: &contracts.Version{LSN: 0x13, Seq: 1}}},
		},
		{
			name: "tables are batched apart in order of appearance",
			changes: []contracts.Change{
				func() contracts.Change {
					ch := change(c, "10", 1, `{"id":1}`, ``, `{"id":1}`)
					ch.Source.Table = "u"
					return ch
				}(),
				change(c, "10", 2, `{"id":1}`, ``, `{"id":1,"name":"a"}`),
			},
			want: []TableBatch{
				{Table: contracts.Table{Schema: "public", Name: "u"}, Columns: colsT, Rows: []RowChange{
					{Key: []Value{txt("1")}, Values: vals("id", "1"), Version: ver(0x10, 1)},
				}},
				{Table: refT, Columns: colsT, Rows: []RowChange{
					{Key: []Value{txt("1")}, Values: vals("id", "1", "name", "a"), Version: ver(0x10, 2)},
				}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Collapse(tt.changes)
			if err != nil {
				t.Fatalf("Collapse: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Collapse:\n got %s\nwant %s", dump(got), dump(tt.want))
			}
		})
	}
}

func dump(v any) string {
	b, _ := json.MarshalIndent(v, "", " ")
	return string(b)
}

func TestCollapseCompositeKeyAndColumns(t *testing.T) {
	t.Parallel()
	oldCols := []contracts.Column{
		{Name: "b", Type: "integer", BaseType: "integer", Key: true},
		{Name: "a", Type: "text", BaseType: "text", Key: true},
		{Name: "gone", Type: "text", BaseType: "text"},
	}
	newCols := []contracts.Column{
		{Name: "b", Type: "integer", BaseType: "integer", Key: true},
		{Name: "a", Type: "text", BaseType: "text", Key: true},
		{Name: "added", Type: "numeric(10,2)", BaseType: "numeric(10,2)"},
	}
	src := contracts.Source{Schema: "s", Table: "t", CommitLSN: "1/0", Seq: 1}
	c1 := contracts.Change{Op: contracts.OpCreate, Source: src, Columns: oldCols,
		Key: row(`{"a":"x","b":2}`), After: row(`{"a":"x","b":2,"gone":"g"}`)}
	src.Seq = 2
	c2 := contracts.Change{Op: contracts.OpCreate, Source: src, Columns: newCols,
		Key: row(`{"a":"y","b":3}`), After: row(`{"a":"y","b":3,"added":"1.50"}`)}
	got, err := Collapse([]contracts.Change{c1, c2})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("got %d batches, want 1", len(got))
	}
	b := got[0]
	wantCols := []contracts.Column{newCols[0], newCols[1], newCols[2], {Name: "gone", Type: "text", BaseType: "text"}}
	if !reflect.DeepEqual(b.Columns, wantCols) {
		t.Errorf("columns = %v, want %v", b.Columns, wantCols)
	}
	if k := b.KeyColumns(); !reflect.DeepEqual(k, []string{"b", "a"}) {
		t.Errorf("key columns = %v, want [b a]", k)
	}
	if len(b.Rows) != 2 {
		t.Fatalf("rows = %d, want 2", len(b.Rows))
	}
	if !reflect.DeepEqual(b.Rows[0].Key, []Value{txt("2"), txt("x")}) || !reflect.DeepEqual(b.Rows[1].Key, []Value{txt("3"), txt("y")}) {
		t.Errorf("keys = %v, %v; want in column order b, a", b.Rows[0].Key, b.Rows[1].Key)
	}
	// Same key values in another JSON spelling collapse to one state.
	src.Seq = 3
	c3 := contracts.Change{Op: contracts.OpDelete, Source: src, Columns: newCols, Key: row(`{"b":3, "a":"y"}`)}
	got, err = Collapse([]contracts.Change{c2, c3})
	if err != nil {
		t.Fatal(err)
	}
	if len(got[0].Rows) != 1 || !got[0].Rows[0].Delete {
		t.Errorf("rows = %+v, want one delete", got[0].Rows)
	}
}

func TestValueFromJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Value
	}{
		{`null`, Value{Null: true}},
		{``, Value{Null: true}},
		{`"abc"`, txt("abc")},
		{`"tab\there \\N \"q\" é"`, txt("tab\there \\N \"q\" é")},
		{`""`, txt("")},
		{`42`, txt("42")},
		{`-9223372036854775808`, txt("-9223372036854775808")},
		{`12345678901234567890123`, txt("12345678901234567890123")},
		{`1.5e3`, txt("1.5e3")},
		{`true`, txt("true")},
		{`false`, txt("false")},
		{` {"a": 1} `, txt(`{"a": 1}`)},
		{`"{1,2}"`, txt("{1,2}")},
	}
	for _, tt := range tests {
		got, err := ValueFromJSON(json.RawMessage(tt.in))
		if err != nil {
			t.Errorf("ValueFromJSON(%s): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ValueFromJSON(%s) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{`nul`, `tru`, `"unterminated`, `x`, `{"a":`} {
		if _, err := ValueFromJSON(json.RawMessage(bad)); err == nil {
			t.Errorf("ValueFromJSON(%s): want error", bad)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body, want string
	}{
		{"not json", `{`, "decode change"},
		{"unknown op", `{"op":"x","source":{"table":"t","commit_lsn":"0/1"}}`, "unknown op"},
		{"bad lsn", `{"op":"c","source":{"table":"t","commit_lsn":"zz"},"key":{"id":1},"after":{"id":1}}`, "commit_lsn"},
		{"no key", `{"op":"c","source":{"table":"t","commit_lsn":"0/1"},"after":{"id":1}}`, "without key"},
		{"no after", `{"op":"u","source":{"table":"t","commit_lsn":"0/1"},"key":{"id":1}}`, "without after"},
		{"no table", `{"op":"t","source":{"commit_lsn":"0/1"}}`, "without source table"},
	}
	for _, tt := range tests {
		_, err := Decode([]byte(tt.body))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Decode error = %v, want containing %q", tt.name, err, tt.want)
		}
	}
	ok := `{"v":1,"op":"d","source":{"schema":"public","table":"t","commit_lsn":"0/1","seq":1},"key":{"id":1}}`
	if _, err := Decode([]byte(ok)); err != nil {
		t.Errorf("Decode(valid delete): %v", err)
	}
}

func TestCollapseMissingKeyValue(t *testing.T) {
	t.Parallel()
	c1 := change(contracts.OpCreate, "1", 1, `{"id":1}`, ``, `{"id":1}`)
	c2 := change(contracts.OpCreate, "1", 2, `{"other":1}`, ``, `{"other":1}`)
	if _, err := Collapse([]contracts.Change{c1, c2}); err == nil || !strings.Contains(err.Error(), "key columns") {
		t.Errorf("Collapse error = %v, want one about key columns", err)
	}
}
