package pgrepl

import (
	"strings"
	"testing"

	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// testAdoptedPublication checks what CheckAdoptedPublication accepts and
// that it never alters the publication: a DBA's publication covering the
// tables by name, by schema or for all tables passes; a missing one, one
// without an operation and one without a table fail with the statement to
// run, and the publication is unchanged afterwards.
func testAdoptedPublication(t *testing.T, pg *testkit.Postgres) {
	ctx := ctxT(t)
	db := pg.CreateDatabase(t, "adopt")
	pg.Exec(t, db, `CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY);
		CREATE SCHEMA s2; CREATE TABLE s2.c (id int PRIMARY KEY);
		CREATE PUBLICATION by_name FOR TABLE a, b;
		CREATE PUBLICATION only_a FOR TABLE a;
		CREATE PUBLICATION no_delete FOR TABLE a, b WITH (publish = 'insert, update, truncate');
		CREATE PUBLICATION every FOR ALL TABLES;
		CREATE PUBLICATION by_schema FOR TABLES IN SCHEMA public`)
	ab := []natsx.Table{{Schema: "public", Name: "a"}, {Schema: "public", Name: "b"}}
	tests := []struct {
		pub   string
		words []string // none: accepted
	}{
		{"by_name", nil},
		{"every", nil},
		{"by_schema", nil},
		{"only_a", []string{`does not publish "public"."b"`, `ALTER PUBLICATION "only_a" ADD TABLE "public"."b"`}},
		{"no_delete", []string{"does not publish delete", "SET (publish = 'insert, update, delete, truncate')"}},
		{"missing", []string{"does not exist", `CREATE PUBLICATION "missing" FOR TABLE`}},
	}
	conn := pg.Connect(t, db)
	for _, tt := range tests {
		err := CheckAdoptedPublication(ctx, conn, tt.pub, ab)
		if tt.words == nil {
			if err != nil {
				t.Errorf("%s: %v", tt.pub, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: accepted", tt.pub)
			continue
		}
		for _, w := range tt.words {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", tt.pub, err, w)
			}
		}
	}
	got, err := PublicationTables(ctx, conn, "only_a")
	if err != nil || len(got) != 1 {
		t.Fatalf("only_a was altered: %v (%v)", got, err)
	}
}
