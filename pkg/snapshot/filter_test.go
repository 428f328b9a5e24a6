package snapshot

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func testTable() Table {
	return Table{Schema: "public", Name: `or"ders`, Columns: []Column{
		{Name: "id", Type: "bigint", Key: true},
		{Name: "region", Type: "text", Key: true},
		{Name: "amount", Type: "numeric(10,2)"},
		{Name: "Status", Type: "public.mood"},
	}, Key: []int{1, 0}}
}

func TestBatchQuery(t *testing.T) {
	tests := []struct {
		name    string
		filters []Filter
		lastKey []string
		sql     string
		args    []string
	}{
		{"first batch", nil, nil,
			`SELECT "id", "region", "amount", "Status" FROM "public"."or""ders" ORDER BY "region", "id" LIMIT 100`, nil},
		{"resume, filtered", []Filter{
			{Column: "amount", Op: ">=", Value: json.RawMessage(`10.5`)},
			{Column: "Status", Op: "IN", Value: json.RawMessage(`["ok", "x'); DROP TABLE t; --"]`)},
			{Column: "region", Op: "like", Value: json.RawMessage(`"eu%"`)},
			{Column: "amount", Op: "is  not null"},
			{Column: "id", Op: "!=", Value: json.RawMessage(`true`)},
		}, []string{"eu-1", "42"},
			`SELECT "id", "region", "amount", "Status" FROM "public"."or""ders" WHERE "amount" >= CAST($1::text AS numeric(10,2))` +
				` AND "Status" IN (CAST($2::text AS public.mood), CAST($3::text AS public.mood)) AND CAST("region" AS text) LIKE $4::text` +
				` AND "amount" IS NOT NULL AND "id" <> CAST($5::text AS bigint)` +
				` AND ("region", "id") > (CAST($6::text AS text), CAST($7::text AS bigint)) ORDER BY "region", "id" LIMIT 100`,
			[]string{"10.5", "ok", "x'); DROP TABLE t; --", "eu%", "true", "eu-1", "42"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sql, args, err := BatchQuery(testTable(), tc.filters, tc.lastKey, 100)
			if err != nil {
				t.Fatal(err)
			}
			if sql != tc.sql {
				t.Fatalf("sql:\n%s\nwant:\n%s", sql, tc.sql)
			}
			var got []string
			for _, a := range args {
				got = append(got, string(a))
			}
			if strings.Join(got, "\x00") != strings.Join(tc.args, "\x00") {
				t.Fatalf("args %q, want %q", got, tc.args)
			}
		})
	}
}

func TestValidateFilters(t *testing.T) {
	ok := Filter{Column: "id", Op: "=", Value: json.RawMessage(`1`)}
	tests := []struct {
		filters []Filter
		index   int
		words   string
	}{
		{[]Filter{ok, ok, ok, ok, ok, ok}, -1, "at most 5 filters"},
		{[]Filter{ok, {Column: "nope", Op: "=", Value: json.RawMessage(`1`)}}, 1, `column "nope" does not exist`},
		{[]Filter{{Column: "id", Op: "between", Value: json.RawMessage(`1`)}}, 0, `op "between" is not one of`},
		{[]Filter{{Column: "id", Op: "="}}, 0, "needs a value"},
		{[]Filter{{Column: "id", Op: "<", Value: json.RawMessage(`[1]`)}}, 0, "string, number or boolean"},
		{[]Filter{{Column: "id", Op: "in", Value: json.RawMessage(`[]`)}}, 0, "non-empty array"},
		{[]Filter{{Column: "id", Op: "in", Value: json.RawMessage(`[1, null]`)}}, 0, "value[1]"},
		{[]Filter{{Column: "id", Op: "is null", Value: json.RawMessage(`1`)}}, 0, "takes no value"},
		{[]Filter{{Column: "id", Op: "like", Value: json.RawMessage(`1`)}}, 0, "string value"},
		{[]Filter{{Op: "="}}, 0, "column is required"},
	}
	for _, tc := range tests {
		err := ValidateFilters(testTable(), tc.filters)
		var fe *FilterError
		if !errors.As(err, &fe) || fe.Index != tc.index || !strings.Contains(fe.Error(), tc.words) {
			t.Errorf("%+v: got %v, want index %d saying %q", tc.filters, err, tc.index, tc.words)
		}
	}
	if err := ValidateFilters(testTable(), []Filter{ok, {Column: "Status", Op: "is null", Value: json.RawMessage(`null`)}}); err != nil {
		t.Errorf("valid filters: %v", err)
	}
}
