package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// testCatalog covers what the console builds its forms from: the source's
// tables, the destination types' fields and the destination check.
func testCatalog(t *testing.T, c *client) {
	var src idView
	c.must(201, "POST", "/sources", c.sourceBody("catalog-src"), &src)

	var tables struct {
		Items []sourceTableView `json:"items"`
	}
	c.must(200, "GET", fmt.Sprintf("/sources/%d/tables", src.ID), nil, &tables)
	got := map[string]sourceTableView{}
	for _, tv := range tables.Items {
		got[tv.Table] = tv
	}
	wantTables := []struct {
		table, ident, idCols string
		ok                   bool
		problem              string
	}{
		{"public.orders", "default", "id", true, ""},
		{"public.audit_log", "full", "", true, ""},
		{"public.events", "default", "", false, `public.events has no primary key: add one, or run ALTER TABLE "public"."events" REPLICA IDENTITY FULL`},
		{"archive.orders", "default", "id", true, ""},
	}
	for _, w := range wantTables {
		g, ok := got[w.table]
		if !ok {
			t.Errorf("%s not listed in %+v", w.table, tables.Items)
			continue
		}
		if g.ReplicaIdentity != w.ident || strings.Join(g.IdentityColumns, ",") != w.idCols || g.OK != w.ok || g.Problem != w.problem {
			t.Errorf("%s = %+v, want identity %s (%s) ok=%v problem %q", w.table, g, w.ident, w.idCols, w.ok, w.problem)
		}
	}
	c.wantError("GET", "/sources/999999/tables", nil, 404, "", "source 999999 does not exist")

	var types struct {
		Items []destinationTypeView `json:"items"`
	}
	c.must(200, "GET", "/destination-types", nil, &types)
	if len(types.Items) != 3 || types.Items[0].Type != "postgres" || types.Items[2].Type != "duckdb" {
		t.Fatalf("destination types = %+v", types.Items)
	}
	fields := map[string]fieldView{}
	for _, f := range types.Items[0].Fields {
		fields[f.Name] = f
	}
	if f := fields["password"]; !f.Secret || f.Required {
		t.Errorf("postgres password = %+v, want a secret, optional field", f)
	}
	if f := fields["port"]; f.Kind != "port" || f.Default != float64(5432) {
		t.Errorf("postgres port = %+v, want kind port, default 5432", f)
	}
	if f := fields["sslmode"]; len(f.OneOf) != 6 || f.Default != "prefer" {
		t.Errorf("postgres sslmode = %+v", f)
	}
	if f := fields["host"]; !f.Required || f.Doc == "" {
		t.Errorf("postgres host = %+v, want required with a description", f)
	}

	var res configCheckResult
	c.must(200, "POST", "/destinations/check", c.pgDestBody("check-ok"), &res)
	if !res.OK || res.Checked != "connected" {
		t.Errorf("postgres check = %+v, want ok, connected", res)
	}
	c.must(200, "POST", "/destinations/check", map[string]any{"name": "d", "type": "duckdb", "config": map[string]any{"path": "x.duckdb"}}, &res)
	if !res.OK || res.Checked != "config" {
		t.Errorf("duckdb check = %+v, want ok, config", res)
	}
	bad := c.pgDestBody("check-bad")
	bad["config"].(map[string]any)["database"] = "no_such_database"
	c.wantError("POST", "/destinations/check", bad, 422, "config.database", "no_such_database")
	c.wantError("POST", "/destinations/check", map[string]any{"name": "d", "type": "duckdb", "config": map[string]any{}}, 422, "config.path", "config.path is required")

	// Nothing was stored by the checks.
	var list struct {
		Total int `json:"total"`
	}
	raw := c.must(200, "GET", "/destinations", nil, nil)
	if err := json.Unmarshal(raw, &list); err != nil || list.Total != 0 {
		t.Errorf("destinations after checks: %s (%v), want none", raw, err)
	}
}
