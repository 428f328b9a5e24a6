package api

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rosettacdc/rosetta/pkg/apitoken"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

func TestBackfillAPI(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	n := testkit.StartNATS(t)
	_, js := n.Connect(t)
	f := &fixture{pg: pg, js: js, sourceDB: pg.CreateDatabase(t, "source"), destDB: pg.CreateDatabase(t, "dest")}
	pg.Exec(t, f.sourceDB, `
		CREATE TABLE public.orders (id bigint PRIMARY KEY, amount numeric, status text, placed date);
		CREATE TABLE public.customers (id bigint PRIMARY KEY, name text);
	`)
	c := newClient(t, f, js, nil)
	var src, d1, d2 idView
	c.must(201, "POST", "/sources", c.sourceBody("src"), &src)
	c.must(201, "POST", "/destinations", c.pgDestBody("d1"), &d1)
	c.must(201, "POST", "/destinations", c.pgDestBody("d2"), &d2)
	var p, quiet pipelineView
	c.must(201, "POST", "/pipelines", map[string]any{"name": "p", "source_id": src.ID, "destination_ids": []int64{d1.ID},
		"tables": []string{"public.orders"}}, &p)
	c.must(201, "POST", "/pipelines", map[string]any{"name": "quiet", "source_id": src.ID, "destination_ids": []int64{d1.ID},
		"tables": []string{"public.customers"}, "snapshot": false}, &quiet)
	path := fmt.Sprintf("/pipelines/%d/backfill", p.ID)
	filter := func(col, op string, v any) map[string]any {
		m := map[string]any{"column": col, "op": op}
		if v != nil {
			m["value"] = v
		}
		return m
	}
	ok := filter("id", ">", 1)

	t.Run("validation", func(t *testing.T) {
		tests := []struct {
			name   string
			body   map[string]any
			field  string
			words  []string
			status int
		}{
			{"no table", map[string]any{}, "table", []string{"table is required"}, 422},
			{"table not in pipeline", map[string]any{"table": "public.customers"}, "table", []string{"not in pipeline"}, 422},
			{"destination not in pipeline", map[string]any{"table": "public.orders", "destination_ids": []int64{d2.ID}}, "destination_ids",
				[]string{fmt.Sprintf("destination %d", d2.ID)}, 422},
			{"batch size", map[string]any{"table": "public.orders", "batch_size": 0}, "batch_size", []string{"batch_size"}, 422},
			{"batch size too large", map[string]any{"table": "public.orders", "batch_size": 100_001}, "batch_size", []string{"from 1 to 100000"}, 422},
			{"too many filters", map[string]any{"table": "public.orders", "filters": []any{ok, ok, ok, ok, ok, ok}}, "filters",
				[]string{"at most 5 filters"}, 422},
			{"unknown column", map[string]any{"table": "public.orders", "filters": []any{filter("nope", "=", 1)}}, "filters[0]",
				[]string{`filters[0]: column "nope" does not exist`}, 422},
			{"unknown op", map[string]any{"table": "public.orders", "filters": []any{ok, filter("id", "~", 1)}}, "filters[1]",
				[]string{`filters[1]: op "~" is not one of`}, 422},
			{"in needs an array", map[string]any{"table": "public.orders", "filters": []any{filter("status", "in", "x")}}, "filters[0]",
				[]string{"non-empty array"}, 422},
			{"is null takes no value", map[string]any{"table": "public.orders", "filters": []any{filter("status", "is null", "x")}}, "filters[0]",
				[]string{"takes no value"}, 422},
			{"null value", map[string]any{"table": "public.orders", "filters": []any{map[string]any{"column": "id", "op": "=", "value": nil}}},
				"filters[0]", []string{"needs a value"}, 422},
			{"like needs a string", map[string]any{"table": "public.orders", "filters": []any{filter("status", "like", 5)}}, "filters[0]",
				[]string{"string value"}, 422},
			{"object value", map[string]any{"table": "public.orders", "filters": []any{filter("id", "=", map[string]any{"a": 1})}}, "filters[0]",
				[]string{"string, number or boolean"}, 422},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) { c.wantError("POST", path, tc.body, tc.status, tc.field, tc.words...) })
		}
		c.wantError("POST", "/pipelines/999999/backfill", map[string]any{"table": "public.orders"}, 404, "")
		// Values are bound: an injection attempt is just a value that
		// does not match.
		var j backfillView
		c.must(201, "POST", path, map[string]any{"table": "public.orders", "filters": []any{filter("status", "=", "x'; DROP TABLE orders; --")}}, &j)
	})

	t.Run("create, get, list, cancel", func(t *testing.T) {
		var j backfillView
		c.must(201, "POST", path, map[string]any{"table": "public.orders", "destination_ids": []int64{d1.ID}, "batch_size": 500,
			"filters": []any{filter("status", "in", []any{"new", "paid"}), filter("placed", ">=", "2024-01-01"), filter("amount", "is not null", nil)}}, &j)
		if j.Status != "PENDING" || j.Kind != "backfill" || j.BatchSize != 500 || len(j.Filters) != 3 || j.RowsCopied != 0 {
			t.Fatalf("created %+v", j)
		}
		var got backfillView
		c.must(200, "GET", fmt.Sprintf("/backfill/%d", j.ID), nil, &got)
		if got.ID != j.ID || got.Table != "public.orders" {
			t.Fatalf("get %+v", got)
		}
		var list listBody[backfillView]
		c.must(200, "GET", path, nil, &list)
		if list.Total < 1 || list.Items[0].ID != j.ID {
			t.Fatalf("list %+v", list)
		}
		if string(got.Filters[0].Value) != `["new","paid"]` {
			t.Fatalf("an admin sees filter values %s", got.Filters[0].Value)
		}
		// A viewer sees the job without the filters' values (row data).
		viewer := *c
		viewer.token = c.mustToken("backfill-viewer", apitoken.Viewer)
		var seen backfillView
		raw := viewer.must(200, "GET", fmt.Sprintf("/backfill/%d", j.ID), nil, &seen)
		if len(seen.Filters) != 3 || seen.Filters[0].Column != "status" || seen.Filters[0].Value != nil || strings.Contains(string(raw), "paid") {
			t.Fatalf("a viewer sees %s", raw)
		}
		raw = viewer.must(200, "GET", path, nil, nil)
		if strings.Contains(string(raw), "paid") {
			t.Fatalf("a viewer's list shows filter values: %s", raw)
		}
		c.must(200, "POST", fmt.Sprintf("/backfill/%d/cancel", j.ID), nil, &got)
		if got.Status != "CANCELLED" || got.FinishedAt == nil {
			t.Fatalf("cancelled %+v", got)
		}
		c.wantError("POST", fmt.Sprintf("/backfill/%d/cancel", j.ID), nil, 409, "", "already finished")
		c.wantError("GET", "/backfill/999999", nil, 404, "")
		c.wantError("GET", "/backfill/x", nil, 400, "job_id")
	})

	t.Run("start snapshots once; refresh; snapshot false", func(t *testing.T) {
		snapshots := func(id int64) []backfillView {
			var list listBody[backfillView]
			c.must(200, "GET", fmt.Sprintf("/pipelines/%d/backfill?limit=500", id), nil, &list)
			var out []backfillView
			for _, j := range list.Items {
				if j.Kind == "snapshot" {
					out = append(out, j)
				}
			}
			return out
		}
		c.must(200, "POST", fmt.Sprintf("/pipelines/%d/start", p.ID), nil, nil)
		c.must(200, "POST", fmt.Sprintf("/pipelines/%d/start", p.ID), nil, nil)
		s := snapshots(p.ID)
		if len(s) != 1 || s[0].Table != "public.orders" || s[0].Status != "PENDING" || len(s[0].Filters) != 0 {
			t.Fatalf("snapshots after start: %+v", s)
		}
		var r refreshView
		c.must(200, "POST", fmt.Sprintf("/pipelines/%d/refresh", p.ID), nil, &r)
		if len(r.Created) != 0 {
			t.Fatalf("refresh with a pending snapshot created %+v", r.Created)
		}
		// Adding a table snapshots just that table.
		c.must(200, "PUT", fmt.Sprintf("/pipelines/%d", p.ID), map[string]any{"name": "p", "source_id": src.ID,
			"destination_ids": []int64{d1.ID}, "tables": []string{"public.orders", "public.customers"}}, nil)
		if s = snapshots(p.ID); len(s) != 2 || s[0].Table != "public.customers" {
			t.Fatalf("snapshots after adding a table: %+v", s)
		}
		// A cancelled snapshot is not redone by start, but by refresh.
		c.must(200, "POST", fmt.Sprintf("/backfill/%d/cancel", s[0].ID), nil, nil)
		c.must(200, "POST", fmt.Sprintf("/pipelines/%d/start", p.ID), nil, nil)
		if got := snapshots(p.ID); len(got) != 2 {
			t.Fatalf("start redid a cancelled snapshot: %+v", got)
		}
		c.must(200, "POST", fmt.Sprintf("/pipelines/%d/refresh", p.ID), nil, &r)
		if len(r.Created) != 1 || r.Created[0].Table != "public.customers" || r.Created[0].Kind != "snapshot" {
			t.Fatalf("refresh created %+v", r.Created)
		}
		c.must(200, "POST", fmt.Sprintf("/pipelines/%d/start", quiet.ID), nil, nil)
		c.must(200, "POST", fmt.Sprintf("/pipelines/%d/refresh", quiet.ID), nil, &r)
		if got := snapshots(quiet.ID); len(got) != 0 || len(r.Created) != 0 {
			t.Fatalf("snapshot false pipeline got snapshots %+v", got)
		}
	})

	t.Run("openapi schemas", func(t *testing.T) {
		spec := readSpec(t)
		for schema, want := range map[string][]string{
			"BackfillRequest": jsonFields(backfillRequest{}),
			"Backfill":        jsonFields(backfillView{}),
			"RefreshResult":   jsonFields(refreshView{}),
		} {
			if got := schemaProperties(t, spec, schema); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("openapi.yaml %s properties = %v, code has %v", schema, got, want)
			}
		}
	})
}
