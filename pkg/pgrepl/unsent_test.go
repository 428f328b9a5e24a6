package pgrepl

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pglogrepl"

	"github.com/rosettacdc/rosetta/contracts"
)

// describedResolver answers the n-th relation message with the n-th
// description, like a catalog read before and after an ALTER TABLE.
type describedResolver struct {
	descs [][]Column
	calls int
}

func (r *describedResolver) ResolveRelation(_ context.Context, _ *pglogrepl.RelationMessage) ([]Column, error) {
	d := r.descs[r.calls]
	r.calls++
	return d, nil
}

func acol(name string, attnum int, defaulted bool, existing contracts.RawValue) Column {
	return Column{Column: contracts.Column{Name: name, Attnum: attnum, Type: "text", BaseType: "text", ExistingValue: existing}, ValueOID: 25, Defaulted: defaulted}
}

func relMessage(cols []Column) *pglogrepl.RelationMessage {
	m := &pglogrepl.RelationMessage{RelationID: 4242, Namespace: "public", RelationName: "t", ReplicaIdentity: 'd'}
	for _, c := range cols {
		m.Columns = append(m.Columns, &pglogrepl.RelationMessageColumn{Name: c.Name, DataType: 25, TypeModifier: -1})
	}
	return m
}

func TestTakeUnsentValues(t *testing.T) {
	id, v := acol("id", 1, false, ""), acol("v", 2, false, "")
	for _, tt := range []struct {
		name  string
		descs [][]Column
		want  []string // columns reported for public.t; nil: no report
	}{
		{"first description has no baseline", [][]Column{{id, v, acol("u", 3, true, "")}}, nil},
		{"volatile default or identity added", [][]Column{{id, v}, {id, v, acol("u", 3, true, "")}}, []string{"u"}},
		{"two such columns at once", [][]Column{{id, v}, {id, v, acol("u", 3, true, ""), acol("n", 4, true, "")}}, []string{"u", "n"}},
		{"non-volatile default kept one existing value", [][]Column{{id, v}, {id, v, acol("u", 3, true, `"x"`)}}, nil},
		{"added without a default", [][]Column{{id, v}, {id, v, acol("u", 3, false, "")}}, nil},
		{"default set on a known column", [][]Column{{id, v}, {id, acol("v", 2, true, "")}}, nil},
		{"renamed column with a default", [][]Column{{id, v}, {id, acol("w", 2, true, "")}}, nil},
		{"dropped and added again under its name", [][]Column{{id, v, acol("u", 3, false, "")}, {id, v, acol("u", 4, true, "")}}, []string{"u"}},
		{"number unknown, name new", [][]Column{{id, v}, {id, v, acol("u", 0, true, "")}}, []string{"u"}},
		{"number unknown, name known", [][]Column{{id, v, acol("u", 3, false, "")}, {id, v, acol("u", 0, true, "")}}, nil},
		{"same description again", [][]Column{{id, v, acol("u", 3, true, "")}, {id, v, acol("u", 3, true, "")}}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDecoder(1, "db", &describedResolver{descs: tt.descs})
			for _, desc := range tt.descs {
				if _, err := d.Decode(context.Background(), 0, relMessage(desc)); err != nil {
					t.Fatal(err)
				}
			}
			got := d.TakeUnsentValues()
			switch {
			case tt.want == nil && len(got) != 0:
				t.Fatalf("reported %+v, want nothing", got)
			case tt.want != nil && (len(got) != 1 || got[0].Schema != "public" || got[0].Table != "t" || !slices.Equal(got[0].Columns, tt.want)):
				t.Fatalf("reported %+v, want public.t %v", got, tt.want)
			}
			if again := d.TakeUnsentValues(); len(again) != 0 {
				t.Fatalf("second take returned %+v, want nothing", again)
			}
		})
	}
}

// TestUnsentValuesAcrossSessions: a column added while capture reconnected
// is compared with what the earlier session's decoder knew (Known,
// SetBaseline), not missed as a first description.
func TestUnsentValuesAcrossSessions(t *testing.T) {
	id, v := acol("id", 1, false, ""), acol("v", 2, false, "")
	u := acol("u", 3, true, "")
	for _, tt := range []struct {
		name   string
		before []Column // described by the first session
		after  []Column // the first description of the next session
		want   []string
	}{
		{"added while reconnecting", []Column{id, v}, []Column{id, v, u}, []string{"u"}},
		{"known before reconnecting", []Column{id, v, u}, []Column{id, v, u}, nil},
		{"replayed from before the column", []Column{id, v, u}, []Column{id, v}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := &describedResolver{descs: [][]Column{tt.before, tt.after}}
			first := NewDecoder(1, "db", res)
			if _, err := first.Decode(context.Background(), 0, relMessage(tt.before)); err != nil {
				t.Fatal(err)
			}
			next := NewDecoder(1, "db", res)
			next.SetBaseline(first.Known())
			if _, err := next.Decode(context.Background(), 0, relMessage(tt.after)); err != nil {
				t.Fatal(err)
			}
			got := next.TakeUnsentValues()
			var cols []string
			if len(got) == 1 {
				cols = got[0].Columns
			}
			if len(got) > 1 || !slices.Equal(cols, tt.want) {
				t.Fatalf("reported %+v, want %v", got, tt.want)
			}
		})
	}
}
