package snowflake

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/pkg/testkit/fakesnowflake"
)

// TestAccountForms: us-west-2 locators lose the region (their URL has
// none), other forms are kept, URLs and host names are refused with what
// to give instead.
func TestAccountForms(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want, err string }{
		{in: "myorg-myaccount", want: "myorg-myaccount"},
		{in: "xy12345", want: "xy12345"},
		{in: "xy12345.eu-west-1", want: "xy12345.eu-west-1"},
		{in: "xy12345.east-us-2.azure", want: "xy12345.east-us-2.azure"},
		{in: "xy12345.us-west-2", want: "xy12345"},
		{in: "XY12345.US-WEST-2.AWS", want: "XY12345"},
		{in: "https://myorg-myaccount.snowflakecomputing.com", err: "URL or host name"},
		{in: "myorg-myaccount.snowflakecomputing.com", err: "URL or host name"},
		{in: "my account", err: "URL or host name"},
		{in: "a.b.c.d", err: "not an account identifier"},
	} {
		got, err := normalizeAccount(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("normalizeAccount(%q) = %q, %v; want an error saying %q", tc.in, got, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("normalizeAccount(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	cfg, err := ParseConfig(fakeConfig(t, startFake(t), map[string]any{"account": "xy12345.us-west-2", "host": nil, "port": nil}))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := cfg.driverConfig(testKeys()[0])
	if err != nil {
		t.Fatal(err)
	}
	if sc.Account != "xy12345" {
		t.Errorf("gosnowflake account = %q, want xy12345", sc.Account)
	}
}

// TestMissingDatabase logs in naming a database that does not exist: the
// check blames the database, and the driver reports a configuration
// problem (retried, not dead-lettered) that names it, not the key.
func TestMissingDatabase(t *testing.T) {
	t.Parallel()
	srv := startFake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := Check(ctx, fakeConfig(t, srv, map[string]any{"database": "nosuch"}))
	var ce *CheckError
	if !errors.As(err, &ce) || ce.Field != "database" || !strings.Contains(err.Error(), `database "NOSUCH"`) {
		t.Fatalf("Check with a missing database = %v; want a *CheckError for field database naming it", err)
	}
	d := New(parseTestConfig(t, fakeConfig(t, srv, map[string]any{"database": "nosuch"})), quietLog())
	defer d.Close()
	err = d.Apply(ctx, nil)
	if err != nil {
		t.Fatalf("empty apply: %v", err)
	}
	e := &env{t: t, srv: srv, drv: d}
	err = e.apply(ev{Table: "items", Columns: itemCols}.Ins(10, 1, "a"))
	var cfgErr *ConfigError
	if !errors.As(err, &cfgErr) || sinkrunner.IsPermanent(err) || !strings.Contains(err.Error(), "refused its database") ||
		strings.Contains(err.Error(), "RSA_PUBLIC_KEY") {
		t.Fatalf("apply with a missing database = %v; want a transient *ConfigError about the database", err)
	}
}

// TestCheckUsesStageAndWarehouse: Check creates a temporary table, stages
// and removes a file and runs DML on the warehouse, so a warehouse or
// stage storage the role cannot use is found when the destination is
// configured, not by the first batch.
func TestCheckUsesStageAndWarehouse(t *testing.T) {
	t.Parallel()
	srv := startFake(t)
	for _, tc := range []struct {
		stmt, code, field, word string
	}{
		{"INSERT INTO", fakesnowflake.FaultNoWarehouse, "warehouse", "USAGE"},
		{"PUT ", fakesnowflake.FaultStageFailure, "", "network policy"},
		{"CREATE TEMPORARY TABLE", fakesnowflake.FaultInternal, "schema", "CREATE TABLE"},
	} {
		srv.FailNextWith(tc.stmt, 1, tc.code)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := Check(ctx, fakeConfig(t, srv, nil))
		cancel()
		var ce *CheckError
		if !errors.As(err, &ce) || ce.Field != tc.field || !strings.Contains(err.Error(), tc.word) || !strings.Contains(err.Error(), tc.code) {
			t.Errorf("Check with %s failing (%s) = %v; want a *CheckError for field %q saying %q", tc.stmt, tc.code, err, tc.field, tc.word)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := Check(ctx, fakeConfig(t, srv, nil)); err != nil {
		t.Fatalf("Check = %v", err)
	}
	(&env{t: t, srv: srv}).noStagedFiles()
}

// TestBatchPolicy: a snowflake destination flushes every 60 s or 20000
// changes unless its config says otherwise, and the driver hands that to
// the sink; bad values are refused.
func TestBatchPolicy(t *testing.T) {
	t.Parallel()
	srv := startFake(t)
	for _, tc := range []struct {
		extra map[string]any
		size  int
		wait  time.Duration
		err   string
	}{
		{extra: nil, size: DefaultBatchSize, wait: DefaultFlushInterval},
		{extra: map[string]any{"flush_interval": "5m", "batch_size": 100000}, size: 100000, wait: 5 * time.Minute},
		{extra: map[string]any{"flush_interval": "200ms", "batch_size": "500"}, size: 500, wait: 200 * time.Millisecond},
		{extra: map[string]any{"flush_interval": "forever"}, err: "flush_interval"},
		{extra: map[string]any{"flush_interval": "2h"}, err: "flush_interval"},
		{extra: map[string]any{"batch_size": 0}, err: "batch_size"},
		{extra: map[string]any{"batch_size": 100001}, err: "batch_size"},
	} {
		drv, err := Factory(context.Background(), fakeConfig(t, srv, tc.extra), quietLog())
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: %v, want an error naming %s", tc.extra, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tc.extra, err)
		}
		size, wait := drv.(*Driver).BatchPolicy()
		if size != tc.size || wait != tc.wait {
			t.Errorf("%v: policy %d %s, want %d %s", tc.extra, size, wait, tc.size, tc.wait)
		}
	}
}
