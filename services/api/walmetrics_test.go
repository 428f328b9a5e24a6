package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/metrics"
	"github.com/rosettacdc/rosetta/pkg/testkit"
	"github.com/rosettacdc/rosetta/pkg/walmonitor"
)

type fakeWAL struct{ got walmonitor.Query }

func (f *fakeWAL) List(_ context.Context, q walmonitor.Query) ([]walmonitor.Sample, error) {
	f.got = q
	lsn, st := "0/16B3748", "reserved"
	n := int64(4096)
	return []walmonitor.Sample{{SourceID: q.SourceID, At: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC),
		WALLSN: &lsn, RetainedBytes: &n, WALStatus: &st}}, nil
}

func TestWALMetricsAndPrometheus(t *testing.T) {
	t.Parallel()
	_, js := testkit.StartNATS(t).Connect(t)
	pg := testkit.StartPostgres(t)
	c := newClient(t, &fixture{pg: pg, js: js}, js, nil)
	srv := c.srv
	get := func(path string) (int, string) {
		t.Helper()
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := srv.App().Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	if code, _ := get("/api/v1/metrics/wal"); code != 409 {
		t.Fatalf("without monitoring: %d, want 409", code)
	}
	if code, _ := get("/metrics"); code != 404 {
		t.Fatalf("/metrics without metrics: %d, want 404", code)
	}

	wal := &fakeWAL{}
	srv.UseWALMetrics(wal)
	m := metrics.New()
	m.ChangePublished(3, "public", "orders")
	srv.UseMetrics(m)

	code, body := get("/api/v1/metrics/wal?source_id=3&from=2026-11-23T00:00:00Z&to=2026-11-24T00:00:00Z&limit=10")
	if code != 200 {
		t.Fatalf("GET /metrics/wal: %d %s", code, body)
	}
	want := walmonitor.Query{SourceID: 3, From: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC),
		To: time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC), Limit: 10}
	if !wal.got.From.Equal(want.From) || !wal.got.To.Equal(want.To) || wal.got.SourceID != 3 || wal.got.Limit != 10 {
		t.Fatalf("query %+v, want %+v", wal.got, want)
	}
	var out walMetricsBody
	if err := json.Unmarshal([]byte(body), &out); err != nil || len(out.Samples) != 1 || *out.Samples[0].RetainedBytes != 4096 {
		t.Fatalf("body %s (%v)", body, err)
	}
	if !strings.Contains(body, `"safe_wal_size":null`) {
		t.Fatalf("an unlimited safe_wal_size must be null: %s", body)
	}

	for q, field := range map[string]string{
		"source_id=x": "source_id", "from=yesterday": "from", "limit=0": "limit",
		"from=2026-11-24T00:00:00Z&to=2026-11-23T00:00:00Z": "to",
	} {
		code, body := get("/api/v1/metrics/wal?" + q)
		if code != 422 || !strings.Contains(body, `"field":"`+field+`"`) {
			t.Errorf("?%s: %d %s, want 422 naming %s", q, code, body, field)
		}
	}

	code, body = get("/metrics")
	if code != 200 || !strings.Contains(body, `rosetta_capture_changes_total{source_id="3",table="public.orders"} 1`) {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}

	spec := readSpec(t)
	for _, c := range []struct {
		schema string
		want   []string
	}{
		{"WALSample", jsonFields(walmonitor.Sample{})},
		{"WALSamples", jsonFields(walMetricsBody{})},
	} {
		if got := schemaProperties(t, spec, c.schema); strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("openapi %s properties %v, server fields %v", c.schema, got, c.want)
		}
	}
}
