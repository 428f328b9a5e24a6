package fakesnowflake

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestMergeRejectsDuplicateSourceRows(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := conn(t, openDB(t, srv, testUser, testKeys()[0]))
	mustExec(t, c, "CREATE TABLE T (ID INT, V TEXT)")
	mustExec(t, c, "INSERT INTO T VALUES (1, 'a')")
	mustExec(t, c, "CREATE TEMP TABLE S (ID INT, V TEXT)")
	mustExec(t, c, "INSERT INTO S VALUES (1, 'x'), (1, 'y')")
	// Snowflake rejects a MERGE whose source matches one target row twice
	// (ERROR_ON_NONDETERMINISTIC_MERGE); a driver that forgets to de-duplicate
	// must fail here as it would there.
	_, err := c.ExecContext(testContext(t), "MERGE INTO T USING S ON T.ID = S.ID WHEN MATCHED THEN UPDATE SET V = S.V")
	if se := snowflakeError(t, err); se.Number != 100090 {
		t.Fatalf("nondeterministic MERGE = %d %q, want 100090", se.Number, se.Message)
	}
	if got := queryStrings(t, c, "SELECT V FROM T"); got[0][0] != "a" {
		t.Fatalf("failed MERGE changed the target: %v", got)
	}
	// Insert-only MERGEs are deterministic whatever the duplicates.
	res := mustExec(t, c, "MERGE INTO T t USING (SELECT ID + 1 AS ID, V FROM S) s ON t.ID = s.ID WHEN NOT MATCHED THEN INSERT (ID, V) VALUES (s.ID, s.V)")
	if n, _ := res.RowsAffected(); n != 2 {
		t.Fatalf("insert-only MERGE affected %d rows, want 2", n)
	}
}

func TestAlterTableAndSnowflakeSyntax(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := conn(t, openDB(t, srv, testUser, testKeys()[0]))
	mustExec(t, c, "CREATE TABLE T (ID INT)")
	mustExec(t, c, "INSERT INTO T VALUES (1)")
	// Snowflake adds several columns in one statement; DuckDB needs one each.
	mustExec(t, c, "ALTER TABLE T ADD COLUMN A NUMBER(5,1) DEFAULT 1.5, B VARIANT")
	// As in Snowflake, a default ADD COLUMN defined cannot be dropped.
	if _, err := c.ExecContext(testContext(t), "ALTER TABLE T ALTER COLUMN A DROP DEFAULT"); err == nil {
		t.Fatal("DROP DEFAULT of a default ADD COLUMN defined succeeded")
	}
	mustExec(t, c, "ALTER TABLE IF EXISTS T ADD C TIMESTAMP_TZ")
	got := queryStrings(t, c, "SELECT ID, A, B, C FROM T")
	if strings.Join(got[0], "|") != "1|1.5|NULL|NULL" {
		t.Fatalf("after ADD COLUMN: %v", got)
	}
	got = queryStrings(t, c, `SELECT IFF(1 = 1, 'y', 'n'), NVL(NULL, 2), 'a\tb\\c', $$it's$$, '2024-01-01 10:00:00'::TIMESTAMP_NTZ::VARCHAR,
		CAST('7' AS NUMBER(3,0)) + 1, PARSE_JSON('{"b":1,"a":[true]}')`)
	want := []string{"y", "2", "a\tb\\c", "it's", "2024-01-01 10:00:00", "8", "{\n  \"a\": [\n    true\n  ],\n  \"b\": 1\n}"}
	for i, w := range want {
		if got[0][i] != w {
			t.Errorf("column %d = %q, want %q", i, got[0][i], w)
		}
	}
	mustExec(t, c, "ALTER SESSION SET TIMEZONE = 'UTC'")
	mustExec(t, c, "USE WAREHOUSE OTHER_WH")
	mustExec(t, c, "CREATE DATABASE IF NOT EXISTS SECOND")
	got = queryStrings(t, c, "SELECT CURRENT_DATABASE(), CURRENT_SCHEMA()")
	if got[0][0] != "SECOND" || got[0][1] != "PUBLIC" {
		t.Fatalf("after CREATE DATABASE the session is in %v, want SECOND.PUBLIC", got)
	}
	mustExec(t, c, "USE SCHEMA ROSETTA.PUBLIC")
	if got := queryStrings(t, c, "SELECT COUNT(*) FROM T"); got[0][0] != "1" {
		t.Fatalf("USE SCHEMA did not switch back: %v", got)
	}
	_, err := c.ExecContext(testContext(t), "SELECT 1; SELECT 2")
	if se := snowflakeError(t, err); se.Number != 2040 {
		t.Fatalf("multi-statement = %d %q, want 002040", se.Number, se.Message)
	}
}

func TestCancelAbortsRunningStatement(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	db := openDB(t, srv, testUser, testKeys()[0])
	ctx, cancel := context.WithTimeout(testContext(t), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := db.ExecContext(ctx, "SELECT COUNT(*) FROM range(1000000000000) a")
	if err == nil {
		t.Fatal("endless query finished")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Logf("cancel error: %v", err)
	}
	if time.Since(start) > 20*time.Second {
		t.Fatalf("cancel took %v", time.Since(start))
	}
	// The server keeps working for new statements.
	if err := db.PingContext(testContext(t)); err != nil {
		t.Fatalf("ping after cancel: %v", err)
	}
}

func TestColumnCommentsRenameDropAndWiden(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := conn(t, openDB(t, srv, testUser, testKeys()[0]))
	mustExec(t, c, `CREATE TABLE ROSETTA.PUBLIC.T (ID INT, A NUMBER(5,0), B VARCHAR(20), C TEXT)`)
	mustExec(t, c, `INSERT INTO T VALUES (1, 7, 'b', 'c')`)
	// Snowflake sets several columns' comments (and types) in one ALTER.
	mustExec(t, c, `ALTER TABLE ROSETTA.PUBLIC.T ALTER COLUMN "A" COMMENT 'mark a', COLUMN "B" COMMENT 'it\'s b'`)
	mustExec(t, c, `COMMENT ON COLUMN T.C IS 'mark c'`)
	mustExec(t, c, `ALTER TABLE T ALTER C UNSET COMMENT`)
	mustExec(t, c, `ALTER TABLE T ALTER COLUMN A SET DATA TYPE NUMBER(10,0), COLUMN B SET DATA TYPE VARCHAR(50)`)
	mustExec(t, c, `ALTER TABLE T RENAME COLUMN B TO B2`)
	mustExec(t, c, `ALTER TABLE T DROP COLUMN IF EXISTS C`)
	got := queryStrings(t, c, `SELECT "COLUMN_NAME", "COMMENT", "DATA_TYPE" FROM "ROSETTA"."INFORMATION_SCHEMA"."COLUMNS"
		WHERE "TABLE_SCHEMA" = 'PUBLIC' AND "TABLE_NAME" = 'T' ORDER BY "ORDINAL_POSITION"`)
	want := [][]string{{"ID", "NULL", "NUMBER"}, {"A", "mark a", "NUMBER"}, {"B2", "it's b", "TEXT"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("INFORMATION_SCHEMA.COLUMNS = %v, want %v", got, want)
	}
	if got := queryStrings(t, c, `SELECT ID, A, B2 FROM T`); strings.Join(got[0], "|") != "1|7|b" {
		t.Fatalf("rows after ALTERs: %v", got)
	}
}

// TestDeclaredLengths: VARCHAR(n) and BINARY(n) lengths, which DuckDB does
// not keep, show in the metadata of SELECT * FROM the table, follow ALTER
// COLUMN … SET DATA TYPE, RENAME COLUMN and DROP COLUMN, and go with the
// table.
func TestDeclaredLengths(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := conn(t, openDB(t, srv, testUser, testKeys()[0]))
	lengths := func() string {
		t.Helper()
		rows, err := c.QueryContext(testContext(t), `SELECT * FROM ROSETTA.PUBLIC.T LIMIT 0`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		cts, err := rows.ColumnTypes()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, ct := range cts {
			n, _ := ct.Length()
			out = append(out, fmt.Sprintf("%s:%d", ct.Name(), n))
		}
		return strings.Join(out, " ")
	}
	mustExec(t, c, `CREATE TABLE T (ID INT, S VARCHAR(5), U STRING, B BINARY(4), C CHARACTER VARYING(3))`)
	if got, want := lengths(), "ID:0 S:5 U:16777216 B:4 C:3"; got != want {
		t.Fatalf("after CREATE: %s, want %s", got, want)
	}
	mustExec(t, c, `CREATE TABLE IF NOT EXISTS T (ID INT, S VARCHAR)`)
	mustExec(t, c, `ALTER TABLE T ALTER COLUMN S SET DATA TYPE VARCHAR(20), COLUMN C SET DATA TYPE VARCHAR`)
	mustExec(t, c, `ALTER TABLE T ADD COLUMN IF NOT EXISTS V VARCHAR(7)`)
	mustExec(t, c, `ALTER TABLE T RENAME COLUMN S TO S2`)
	mustExec(t, c, `ALTER TABLE T DROP COLUMN B`)
	if got, want := lengths(), "ID:0 S2:20 U:16777216 C:16777216 V:7"; got != want {
		t.Fatalf("after ALTERs: %s, want %s", got, want)
	}
	mustExec(t, c, `DROP TABLE T`)
	mustExec(t, c, `CREATE TABLE T (ID INT, S2 VARCHAR)`)
	if got, want := lengths(), "ID:0 S2:16777216"; got != want {
		t.Fatalf("after DROP and CREATE: %s, want %s", got, want)
	}
}

// TestSemiStructuredFunctions pins the Snowflake semantics of the object
// functions the fake provides as macros (semistructured.go), on an OBJECT
// column as the Snowflake driver keeps its column versions.
func TestSemiStructuredFunctions(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := conn(t, openDB(t, srv, testUser, testKeys()[0]))
	mustExec(t, c, "CREATE TABLE T (ID INT, O OBJECT)")
	mustExec(t, c, `INSERT INTO T SELECT 1, OBJECT_INSERT(OBJECT_INSERT(OBJECT_CONSTRUCT(), 'B', ARRAY_CONSTRUCT(5, -1)), '$.x', 'dollar')`)
	mustExec(t, c, "INSERT INTO T SELECT 2, NULL")
	got := queryStrings(t, c, `SELECT GET(GET(O, 'B'), 0)::NUMBER(20,0), GET(GET(O, 'B'), 1), GET(GET(O, 'B'), 2), GET(O, '$.x'), GET(O, 'missing'),
		ARRAY_SIZE(OBJECT_KEYS(O)), ARRAY_SIZE(O), GET(O, 0),
		OBJECT_INSERT(O, 'C', NULL), OBJECT_INSERT(O, 'C', PARSE_JSON('null')), OBJECT_INSERT(O, 'B', 7, TRUE), OBJECT_INSERT(O, 'N', 1, TRUE)
		FROM T ORDER BY ID`)
	want := [][]string{
		{"5", "-1", "NULL", `"dollar"`, "NULL", "2", "NULL", "NULL",
			"{\n  \"$.x\": \"dollar\",\n  \"B\": [\n    5,\n    -1\n  ]\n}",
			"{\n  \"$.x\": \"dollar\",\n  \"B\": [\n    5,\n    -1\n  ],\n  \"C\": null\n}",
			"{\n  \"$.x\": \"dollar\",\n  \"B\": 7\n}",
			"{\n  \"$.x\": \"dollar\",\n  \"B\": [\n    5,\n    -1\n  ],\n  \"N\": 1\n}"},
		{"NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL"},
	}
	for r := range want {
		for i, w := range want[r] {
			if got[r][i] != w {
				t.Errorf("row %d column %d = %q, want %q", r+1, i+1, got[r][i], w)
			}
		}
	}
	// An existing key without the update flag is an error, as in Snowflake.
	if _, err := c.ExecContext(testContext(t), "SELECT OBJECT_INSERT(O, 'B', 1) FROM T WHERE ID = 1"); err == nil {
		t.Fatal("OBJECT_INSERT of an existing key without updateFlag succeeded")
	}
}
