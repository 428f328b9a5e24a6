package fakesnowflake

import (
	"compress/gzip"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeOrdersCSVGz writes n orders (id, status, amount, updated_at, payload, lsn)
// as gzip CSV. Payloads are random so the file stays multi-megabyte compressed,
// which is what exercises the driver's upload loop.
func writeOrdersCSVGz(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	gz := gzip.NewWriter(f)
	buf := make([]byte, 48)
	for i := 1; i <= n; i++ {
		if _, err := rand.Read(buf); err != nil {
			t.Fatal(err)
		}
		// The payload is a JSON object with quotes and a comma: it must be enclosed.
		fmt.Fprintf(gz, "%d,new,%d.%02d,2024-01-01 00:00:%02d,\"{\"\"k\"\":\"\"%s\"\",\"\"n\"\":%d}\",5\n",
			i, i%1000, i%100, i%60, hex.EncodeToString(buf), i)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func queryStrings(t *testing.T, c *sql.Conn, q string) [][]string {
	t.Helper()
	rows, err := c.QueryContext(testContext(t), q)
	if err != nil {
		t.Fatalf("query %q: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatalf("scan %q: %v", q, err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = v.String
			if !v.Valid {
				row[i] = "NULL"
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("rows %q: %v", q, err)
	}
	return out
}

func TestPutCopyMerge(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := conn(t, openDB(t, srv, testUser, testKeys()[0]))
	dir := t.TempDir()

	mustExec(t, c, `CREATE TABLE ROSETTA.PUBLIC.ORDERS (
		ID NUMBER(38,0) NOT NULL, STATUS VARCHAR, AMOUNT NUMBER(12,2),
		UPDATED_AT TIMESTAMP_NTZ, PAYLOAD VARIANT, LSN NUMBER(38,0))`)

	// 1. Initial load: a multi-megabyte gzip CSV through the table stage.
	const seeded = 60000
	csvPath := filepath.Join(dir, "orders_0001.csv.gz")
	writeOrdersCSVGz(t, csvPath, seeded)
	if fi, _ := os.Stat(csvPath); fi.Size() < 2<<20 {
		t.Fatalf("test file is only %d bytes; want a multi-megabyte upload", fi.Size())
	}
	put := queryStrings(t, c, "PUT file://"+csvPath+" @%ORDERS OVERWRITE=TRUE")
	if len(put) != 1 || put[0][6] != "UPLOADED" {
		t.Fatalf("PUT result = %v, want one UPLOADED file", put)
	}
	staged, err := os.ReadFile(filepath.Join(srv.StageDir(), "tables", "ROSETTA", "PUBLIC", "ORDERS", "orders_0001.csv.gz"))
	if err != nil {
		t.Fatalf("staged file: %v", err)
	}
	original, _ := os.ReadFile(csvPath)
	if string(staged) != string(original) {
		t.Fatalf("staged file differs from the uploaded one (%d vs %d bytes)", len(staged), len(original))
	}
	copyRes := queryStrings(t, c, `COPY INTO ORDERS FROM @%ORDERS
		FILE_FORMAT = (TYPE = CSV FIELD_OPTIONALLY_ENCLOSED_BY = '"' COMPRESSION = GZIP)
		ON_ERROR = ABORT_STATEMENT PURGE = TRUE`)
	if len(copyRes) != 1 || copyRes[0][0] != "orders_0001.csv.gz" || copyRes[0][1] != "LOADED" || copyRes[0][3] != fmt.Sprint(seeded) {
		t.Fatalf("COPY result = %v, want orders_0001.csv.gz LOADED %d", copyRes, seeded)
	}
	if left := queryStrings(t, c, "LIST @%ORDERS"); len(left) != 0 {
		t.Fatalf("PURGE=TRUE left %v in the stage", left)
	}
	// Snowflake's load metadata: the same file content is not loaded twice.
	queryStrings(t, c, "PUT file://"+csvPath+" @%ORDERS")
	again := queryStrings(t, c, "COPY INTO ORDERS FROM @%ORDERS FILE_FORMAT = (TYPE = CSV FIELD_OPTIONALLY_ENCLOSED_BY = '\"')")
	if len(again) != 1 || !strings.Contains(again[0][0], "0 files processed") {
		t.Fatalf("second COPY of the same file = %v, want 0 files processed", again)
	}
	queryStrings(t, c, "REMOVE @%ORDERS")

	// 2. A batch of changes as Parquet with lower-case column names, loaded into a
	// per-session temp staging table by name.
	parquetPath := filepath.Join(dir, "batch_0002.parquet")
	if _, err := srv.DB().ExecContext(testContext(t), `COPY (
		SELECT * FROM (VALUES
			(1::BIGINT, 'paid', 10.50::DECIMAL(12,2), TIMESTAMP '2024-02-01 10:00:00', '{"k":"v1"}', 10::BIGINT, false),
			(1, 'shipped', 10.50, TIMESTAMP '2024-02-01 11:00:00', '{"k":"v2"}', 11, false),
			(2, NULL, NULL, NULL, NULL, 12, true),
			(3, 'stale', 0, TIMESTAMP '2020-01-01 00:00:00', NULL, 1, false),
			(70001, 'new', 99.99, TIMESTAMP '2024-02-01 12:00:00', '[1,2]', 13, false),
			(70002, 'gone', 1, NULL, NULL, 14, true)
		) AS v(id, status, amount, updated_at, payload, lsn, deleted)
	) TO '`+parquetPath+`' (FORMAT PARQUET)`); err != nil {
		t.Fatalf("write parquet: %v", err)
	}
	mustExec(t, c, `CREATE TEMPORARY TABLE ROSETTA.PUBLIC.ORDERS_STAGE (
		ID NUMBER(38,0), STATUS VARCHAR, AMOUNT NUMBER(12,2), UPDATED_AT TIMESTAMP_NTZ,
		PAYLOAD VARIANT, LSN NUMBER(38,0), DELETED BOOLEAN)`)
	queryStrings(t, c, "PUT 'file://"+parquetPath+"' @%ORDERS_STAGE/batch AUTO_COMPRESS=TRUE OVERWRITE=TRUE")
	stageCopy := queryStrings(t, c, `COPY INTO ROSETTA.PUBLIC.ORDERS_STAGE FROM @%ORDERS_STAGE/batch
		FILE_FORMAT = (TYPE = PARQUET) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE PURGE = TRUE`)
	if len(stageCopy) != 1 || stageCopy[0][3] != "6" {
		t.Fatalf("staging COPY = %v, want 6 rows loaded", stageCopy)
	}

	// 3. Apply in one transaction with a deduplicating MERGE.
	tx, err := c.BeginTx(testContext(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := tx.ExecContext(testContext(t), `MERGE INTO ROSETTA.PUBLIC.ORDERS t
		USING (SELECT * FROM ROSETTA.PUBLIC.ORDERS_STAGE
		       QUALIFY ROW_NUMBER() OVER (PARTITION BY ID ORDER BY LSN DESC) = 1) s
		ON t.ID = s.ID
		WHEN MATCHED AND s.DELETED THEN DELETE
		WHEN MATCHED AND s.LSN > t.LSN THEN UPDATE SET
			STATUS = s.STATUS, AMOUNT = s.AMOUNT, UPDATED_AT = s.UPDATED_AT, PAYLOAD = s.PAYLOAD, LSN = s.LSN
		WHEN NOT MATCHED AND NOT s.DELETED THEN INSERT (ID, STATUS, AMOUNT, UPDATED_AT, PAYLOAD, LSN)
			VALUES (s.ID, s.STATUS, s.AMOUNT, s.UPDATED_AT, s.PAYLOAD, s.LSN)`)
	if err != nil {
		t.Fatalf("merge: %v", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 3 {
		t.Fatalf("merge rows affected = %d, %v; want 3 (1 insert + 1 update + 1 delete)", n, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}

	got := queryStrings(t, c, "SELECT ID, STATUS, AMOUNT, UPDATED_AT::VARCHAR, PAYLOAD, LSN FROM ORDERS WHERE ID IN (1, 2, 3, 70001, 70002) ORDER BY ID")
	want := [][]string{
		{"1", "shipped", "10.50", "2024-02-01 11:00:00", "{\n  \"k\": \"v2\"\n}", "11"},
		{"3", "new", "3.03", "2024-01-01 00:00:03", "", "5"},
		{"70001", "new", "99.99", "2024-02-01 12:00:00", "[\n  1,\n  2\n]", "13"},
	}
	if len(got) != len(want) {
		t.Fatalf("merged rows = %v, want %v", got, want)
	}
	for i := range want {
		for j := range want[i] {
			if j == 4 && want[i][j] == "" {
				continue // row 3's random payload
			}
			if got[i][j] != want[i][j] {
				t.Fatalf("row %d column %d = %q, want %q (row %v)", i, j, got[i][j], want[i][j], got[i])
			}
		}
	}
	total := queryStrings(t, c, "SELECT COUNT(*), SUM(LSN) FROM ORDERS")
	if total[0][0] != fmt.Sprint(seeded) { // -1 deleted, +1 inserted
		t.Fatalf("row count after merge = %s, want %d", total[0][0], seeded)
	}
}

func TestCopyErrorsAreClear(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := conn(t, openDB(t, srv, testUser, testKeys()[0]))
	ctx := testContext(t)
	mustExec(t, c, "CREATE TABLE T (ID INT NOT NULL, NAME TEXT)")
	path := filepath.Join(t.TempDir(), "bad.csv")
	if err := os.WriteFile(path, []byte("1,a\n,b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	queryStrings(t, c, "PUT file://"+path+" @%T") // the driver gzips it on the way
	_, err := c.ExecContext(ctx, "COPY INTO T FROM @%T FILE_FORMAT=(TYPE=CSV)")
	se := snowflakeError(t, err)
	if se.Number != 100072 || !strings.Contains(se.Message, "bad.csv.gz") {
		t.Fatalf("COPY of a NULL id = %d %q, want 100072 naming the file", se.Number, se.Message)
	}
	if n := queryStrings(t, c, "SELECT COUNT(*) FROM T"); n[0][0] != "0" {
		t.Fatalf("failed COPY left %s rows; ABORT_STATEMENT must load nothing", n[0][0])
	}
	_, err = c.ExecContext(ctx, "COPY INTO T FROM @%T FILE_FORMAT=(TYPE=CSV) ON_ERROR=CONTINUE")
	if se := snowflakeError(t, err); se.Number != 2040 || !strings.Contains(se.Message, "ON_ERROR=CONTINUE") {
		t.Fatalf("unsupported option = %d %q", se.Number, se.Message)
	}
	_, err = c.ExecContext(ctx, "PUT file://"+path+" @%NO_SUCH_TABLE")
	if se := snowflakeError(t, err); se.Number != 2003 {
		t.Fatalf("PUT to a missing table stage = %d %q, want 002003", se.Number, se.Message)
	}
}

// TestCopyTransformAndStrictOptions loads a CSV file with the documented
// transformation form (columns picked by position), and refuses what
// Snowflake documents nowhere or the fake would silently get wrong: a
// column list without a transformation, an unknown option (syntax error
// 001003), an option the fake does not implement (002040).
func TestCopyTransformAndStrictOptions(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := conn(t, openDB(t, srv, testUser, testKeys()[0]))
	ctx := testContext(t)
	mustExec(t, c, "CREATE TABLE T (ID INT NOT NULL, NAME TEXT, NOTE TEXT)")
	path := filepath.Join(t.TempDir(), "rows.csv")
	if err := os.WriteFile(path, []byte("x,1,a\ny,2,b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	queryStrings(t, c, "PUT file://"+path+" @%T/d")
	res := queryStrings(t, c, `COPY INTO T (NAME, ID, NOTE) FROM (SELECT $3, $2, $1 FROM @%T/d/) FILE_FORMAT = (TYPE = CSV) FORCE = TRUE`)
	if len(res) != 1 || res[0][3] != "2" {
		t.Fatalf("COPY with a transformation = %q, want one file with 2 rows loaded", res)
	}
	got := queryStrings(t, c, "SELECT ID, NAME, NOTE FROM T ORDER BY ID")
	if len(got) != 2 || strings.Join(got[0], "|") != "1|a|x" || strings.Join(got[1], "|") != "2|b|y" {
		t.Fatalf("rows = %q, want 1|a|x, 2|b|y", got)
	}
	for _, tc := range []struct {
		sql  string
		code int
	}{
		{`COPY INTO T (ID, NAME, NOTE) FROM @%T/d/ FILE_FORMAT = (TYPE = CSV) FORCE = TRUE`, 1003},
		{`COPY INTO T FROM @%T/d/ FILE_FORMAT = (TYPE = CSV) FORCE = TRUE NO_SUCH_OPTION = TRUE`, 1003},
		{`COPY INTO T FROM @%T/d/ FILE_FORMAT = (TYPE = CSV NO_SUCH_FORMAT_OPTION = 1) FORCE = TRUE`, 1003},
		{`COPY INTO T FROM @%T/d/ FILE_FORMAT = (TYPE = CSV) TRUNCATECOLUMNS = TRUE FORCE = TRUE`, 2040},
		{`COPY INTO T FROM @%T/d/ FILE_FORMAT = (TYPE = CSV TRIM_SPACE = TRUE) FORCE = TRUE`, 2040},
		{`COPY INTO T FROM @%T/d/ FILE_FORMAT = (TYPE = CSV) SIZE_LIMIT = 10 FORCE = TRUE`, 2040},
		{`COPY INTO T (ID, NAME) FROM (SELECT $1, UPPER($2) FROM @%T/d/) FILE_FORMAT = (TYPE = CSV) FORCE = TRUE`, 2040},
		{`COPY INTO T (ID, NAME) FROM (SELECT $1 FROM @%T/d/) FILE_FORMAT = (TYPE = CSV) FORCE = TRUE`, 2020},
	} {
		_, err := c.ExecContext(ctx, tc.sql)
		if se := snowflakeError(t, err); se.Number != tc.code {
			t.Errorf("%s\n= %d %q, want %06d", tc.sql, se.Number, se.Message, tc.code)
		}
	}
}
