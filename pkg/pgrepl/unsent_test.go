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
