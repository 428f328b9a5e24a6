package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	sf "github.com/snowflakedb/gosnowflake"

	"github.com/rosettacdc/rosetta/pkg/fakesnowflake"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestSnowflakeDestinationThroughTheAPI replicates through `rosetta dev` into
// a fake Snowflake that the real gosnowflake driver talks to (key-pair login,
// PUT, COPY, MERGE on DuckDB), and reads the rows back through gosnowflake.
func TestSnowflakeDestinationThroughTheAPI(t *testing.T) {
	t.Parallel()
	srv, key, pemKey := fakesnowflake.StartWithKeyPair(t, "E2EACCT", "LOADER")

	e := newEnv(t)
	// The API accepts a tls_ca_file only inside ROSETTA_KEYS_DIR.
	caFile := srv.CAFile(t)
	e.extraEnv = []string{"SNOWFLAKE_DISABLE_PLATFORM_DETECTION=true", "SF_DISABLE_MINICORE=true", "ROSETTA_KEYS_DIR=" + filepath.Dir(caFile)}
	e.pg.Exec(t, e.sourceDB, schemaSQL)
	e.start()
	var src, dst, pipe idOnly
	e.mustAPI("POST", "/sources", map[string]any{
		"name": "src", "host": "127.0.0.1", "port": e.pg.Port, "database": e.sourceDB,
		"user": "postgres", "password": "pw", "sslmode": "disable",
	}, &src)
	var raw map[string]any
	code := e.api("POST", "/destinations", map[string]any{
		"name": "snow", "type": "snowflake", "config": map[string]any{
			"account": "e2eacct", "user": "loader", "database": "ROSETTA", "schema": "PUBLIC",
			"warehouse": "LOAD_WH", "private_key": pemKey,
			"host": srv.Host(), "port": srv.Port(), "protocol": "https", "tls_ca_file": caFile,
			// Flush as soon as the destination is free: the default (60s,
			// to let a warehouse sleep) would slow the test down.
			"flush_interval": "200ms",
		},
	}, &raw)
	if code != 201 {
		t.Fatalf("create snowflake destination: HTTP %d %v", code, raw)
	}
	if strings.Contains(fmt.Sprint(raw), "PRIVATE KEY") {
		t.Fatalf("the API returned the private key: %v", raw)
	}
	dst.ID = int64(raw["id"].(float64))
	e.mustAPI("POST", "/pipelines", map[string]any{
		"name": "p", "source_id": src.ID, "destination_ids": []int64{dst.ID}, "tables": []string{"public.customers"},
	}, &pipe)
	e.mustAPI("POST", fmt.Sprintf("/pipelines/%d/start", pipe.ID), nil, nil)
	e.waitCapturing()

	e.pg.Exec(t, e.sourceDB, `INSERT INTO customers (id, name, balance) SELECT g, 'c' || g, g * 1.5 FROM generate_series(1, 300) g;
		UPDATE customers SET name = 'changed ' || id WHERE id % 4 = 0;
		DELETE FROM customers WHERE id % 10 = 0;
		UPDATE customers SET id = id + 1000 WHERE id = 7;`)

	src2 := e.pg.Connect(t, e.sourceDB)
	want, err := tableRows(t, src2, "customers", []string{"id", "name"})
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(sf.NewConnector(sf.SnowflakeDriver{}, sf.Config{
		Account: "E2EACCT", User: "LOADER", Authenticator: sf.AuthTypeJwt, PrivateKey: key,
		//lint:ignore SA1019 gosnowflake 1.19 has no other switch for client telemetry; Rosetta sends none
		Host: srv.Host(), Port: srv.Port(), Protocol: "https", Transporter: srv.ClientTransport(), DisableTelemetry: true,
		Database: "ROSETTA", Schema: "PUBLIC",
	}))
	defer db.Close()
	deadline := time.Now().Add(90 * time.Second)
	var got []string
	for {
		got = snowflakeRows(db)
		if slices.Equal(want, got) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("snowflake did not converge: %s\n%s", describeDiff("customers", want, got), testkit.Tail(e.logBuf.String(), 3000))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// snowflakeRows reads id|name of every customer, sorted like tableRows.
func snowflakeRows(db *sql.DB) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, `SELECT "ID", "NAME" FROM CUSTOMERS`)
	if err != nil {
		return []string{"query: " + err.Error()}
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, name sql.NullString
		if err := rows.Scan(&id, &name); err != nil {
			return []string{"scan: " + err.Error()}
		}
		out = append(out, id.String+"|"+name.String)
	}
	slices.Sort(out)
	return out
}
