package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/dlq"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// dlqEntry is what a sink would dead-letter: a change of table with id and
// name, rejected with a constraint violation.
func dlqEntry(t *testing.T, src, dest, pipeline int64, table string, seq int64, id, name string) dlq.Entry {
	t.Helper()
	schema, tbl, _ := strings.Cut(table, ".")
	c := contracts.Change{V: 1, Op: contracts.OpCreate,
		Source:  contracts.Source{SourceID: src, Schema: schema, Table: tbl, CommitLSN: "0/16B3748", Seq: seq},
		Columns: []contracts.Column{{Name: "id", Type: "text", BaseType: "text", Key: true}, {Name: "name", Type: "text", BaseType: "text"}},
		Key:     contracts.Row{"id": json.RawMessage(fmt.Sprintf("%q", id))},
		After:   contracts.Row{"id": json.RawMessage(fmt.Sprintf("%q", id)), "name": json.RawMessage(fmt.Sprintf("%q", name))},
	}
	body, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return dlq.Entry{SourceID: src, DestinationID: dest, PipelineID: pipeline, Table: table,
		MsgID: contracts.MsgID(src, c.Source.CommitLSN, seq), Change: body, ErrorClass: "constraint_violation",
		Error:  `new row for relation "orders" violates check constraint "orders_name_check"`,
		Stream: contracts.StreamName(src), StreamSeq: uint64(seq), Subject: contracts.ChangeSubject(src, schema, tbl, 0)}
}

func TestDLQAPI(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	_, js := testkit.StartNATS(t).Connect(t)
	r := testkit.StartRedis(t)
	ctx := context.Background()
	f := &fixture{pg: pg, js: js, sourceDB: pg.CreateDatabase(t, "source"), destDB: pg.CreateDatabase(t, "dest")}
	pg.Exec(t, f.sourceDB, `CREATE TABLE public.orders (id text PRIMARY KEY, name text);
		CREATE TABLE public.customers (id text PRIMARY KEY, name text)`)
	rc := redisClient(t, r)
	q, err := dlq.New(rc, dlq.Config{Prefix: "api" + testkit.RandomSuffix()})
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, f, js, RedisPinger(rc))
	c.srv.UseDeadLetters(q)

	var src, d1, d2 idView
	c.must(201, "POST", "/sources", c.sourceBody("src"), &src)
	c.must(201, "POST", "/destinations", c.pgDestBody("d1"), &d1)
	c.must(201, "POST", "/destinations", c.pgDestBody("d2"), &d2)
	var p pipelineView
	c.must(201, "POST", "/pipelines", map[string]any{"name": "p", "source_id": src.ID, "destination_ids": []int64{d1.ID},
		"tables": []string{"public.orders", "public.customers"}}, &p)
	base := fmt.Sprintf("/pipelines/%d/destinations/%d", p.ID, d1.ID)

	longKey := strings.Repeat("k", 300)
	longName := strings.Repeat("é", 400)
	for _, e := range []dlq.Entry{
		dlqEntry(t, src.ID, d1.ID, p.ID, "public.orders", 1, "1", "bad"),
		dlqEntry(t, src.ID, d1.ID, p.ID, "public.orders", 2, longKey, longName),
		dlqEntry(t, src.ID, d1.ID, p.ID, "public.customers", 3, "3", "bad"),
		dlqEntry(t, src.ID, d2.ID, p.ID, "public.orders", 4, "4", "other destination"),
	} {
		if _, _, err := q.Add(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := q.Add(ctx, dlq.Entry{SourceID: src.ID, DestinationID: d1.ID, Table: "public.orders", MsgID: "junk",
		Change: []byte("not a change"), ErrorClass: "undecodable", Error: "invalid character"}); err != nil {
		t.Fatal(err)
	}

	t.Run("pipeline detail and per-pipeline list", func(t *testing.T) {
		var detail struct {
			pipelineDetail
			Destinations []struct {
				DestinationID int64          `json:"destination_id"`
				Health        string         `json:"health"`
				DLQ           dlqSummaryView `json:"dlq"`
			} `json:"destinations"`
		}
		c.must(200, "GET", fmt.Sprintf("/pipelines/%d", p.ID), nil, &detail)
		if len(detail.Destinations) != 1 || detail.Destinations[0].Health != "PAUSED" { // a new pipeline is paused
			t.Fatalf("detail = %+v", detail)
		}
		sum := detail.Destinations[0].DLQ
		if !sum.Enabled || sum.Depth != 4 || sum.OldestAt == nil || len(sum.Tables) != 2 ||
			sum.Tables[0].Table != "public.customers" || sum.Tables[0].Depth != 1 || sum.Tables[1].Depth != 3 || sum.Error != "" {
			t.Fatalf("dlq summary = %+v", sum)
		}
		var list pipelineDLQView
		c.must(200, "GET", fmt.Sprintf("/pipelines/%d/dlq", p.ID), nil, &list)
		if !list.Enabled || len(list.Items) != 2 || list.Items[1].DestinationID != d1.ID || list.Items[1].OldestID == "" {
			t.Fatalf("pipeline dlq = %+v", list)
		}
		c.wantError("GET", "/pipelines/987654/dlq", nil, 404, "", "pipeline 987654 does not exist")
	})

	t.Run("entries, paged, with long values cut and keys whole", func(t *testing.T) {
		var page dlqPageView
		c.must(200, "GET", base+"/dlq?limit=2", nil, &page)
		if page.Total != 4 || page.Limit != 2 || len(page.Items) != 2 || page.Next == nil || page.Items[0].Table != "public.customers" {
			t.Fatalf("page 1 = %+v", page)
		}
		var all []dlqEntryView
		all = append(all, page.Items...)
		c.must(200, "GET", base+"/dlq?limit=2&after="+url.QueryEscape(*page.Next), nil, &page)
		if len(page.Items) != 2 || page.Next != nil {
			t.Fatalf("page 2 = %+v", page)
		}
		all = append(all, page.Items...)
		for _, e := range all {
			if e.Attempts != 1 || e.ID == "" || e.Error == "" || e.Position.Stream == "" && e.ErrorClass != "undecodable" {
				t.Errorf("entry = %+v", e)
			}
		}
		long := all[2]
		var key string
		if err := json.Unmarshal(long.Key["id"], &key); err != nil || key != longKey || !long.Truncated || long.Op != "c" ||
			long.ErrorClass != "constraint_violation" || long.PipelineID != p.ID || long.Position.Seq != 2 {
			t.Fatalf("long entry = %+v (key %d bytes)", long, len(key))
		}
		change, _ := json.Marshal(long.Change)
		var cut contracts.Change
		if err := json.Unmarshal(change, &cut); err != nil {
			t.Fatal(err)
		}
		var name string
		_ = json.Unmarshal(cut.After["name"], &name)
		if len(name) > 260 || !strings.HasSuffix(name, "…") || !strings.HasPrefix(name, "éé") {
			t.Fatalf("long value shown as %d bytes: %q", len(name), name)
		}
		if junk := all[3]; junk.Change != "not a change" || junk.Op != "" || junk.ErrorClass != "undecodable" {
			t.Fatalf("undecodable entry = %+v", junk)
		}
		c.must(200, "GET", base+"/dlq?table=public.customers", nil, &page)
		if page.Total != 1 || len(page.Items) != 1 || page.Items[0].Table != "public.customers" {
			t.Fatalf("one table = %+v", page)
		}
	})

	t.Run("validation and 404s", func(t *testing.T) {
		tests := []struct {
			method, path string
			body         any
			status       int
			field        string
			words        []string
		}{
			{"GET", base + "/dlq?limit=0", nil, 422, "limit", []string{"1 to 500"}},
			{"GET", base + "/dlq?table=orders", nil, 422, "table", []string{"schema.table"}},
			{"GET", base + "/dlq?after=nonsense", nil, 422, "after", []string{"next"}},
			{"GET", fmt.Sprintf("/pipelines/987654/destinations/%d/dlq", d1.ID), nil, 404, "", []string{"pipeline 987654 does not exist"}},
			{"GET", fmt.Sprintf("/pipelines/%d/destinations/%d/dlq", p.ID, d2.ID), nil, 404, "", []string{fmt.Sprintf("destination %d is not a destination of pipeline %d", d2.ID, p.ID)}},
			{"GET", fmt.Sprintf("/pipelines/%d/destinations/x/dlq", p.ID), nil, 400, "destination_id", []string{"positive integer"}},
			{"POST", base + "/recover-dlq", nil, 409, "", []string{"paused", "/start"}},
			{"POST", base + "/recover-dlq", map[string]any{"max_count": 0}, 422, "max_count", []string{"1 to"}},
			{"POST", base + "/recover-dlq", map[string]any{"max_count": "5"}, 422, "max_count", []string{"integer"}},
			{"POST", base + "/recover-dlq", map[string]any{"table": "nodot"}, 422, "table", []string{"schema.table"}},
			{"POST", base + "/recover-dlq", map[string]any{"tabel": "public.orders"}, 400, "tabel", []string{"unknown field"}},
			{"POST", fmt.Sprintf("/pipelines/%d/destinations/%d/recover-dlq", p.ID, d2.ID), nil, 404, "", []string{"not a destination"}},
			{"POST", base + "/discard-dlq", map[string]any{"table": 5}, 422, "table", []string{"string"}},
			{"POST", base + "/discard-dlq", `{"table": "public.orders"`, 400, "", []string{"invalid JSON"}},
			{"GET", base + "/dlq/recoveries/987654", nil, 404, "", []string{"recovery 987654"}},
			{"GET", base + "/dlq/recoveries/x", nil, 400, "recovery_id", []string{"positive integer"}},
		}
		for _, tt := range tests {
			c.wantError(tt.method, tt.path, tt.body, tt.status, tt.field, tt.words...)
		}
	})

	t.Run("recover records a recovery for the sink", func(t *testing.T) {
		c.must(200, "POST", fmt.Sprintf("/pipelines/%d/start", p.ID), nil, nil)
		code, body := c.do("POST", base+"/recover-dlq", map[string]any{"table": "public.orders", "max_count": 5})
		var rec recoveryView
		if err := json.Unmarshal(body, &rec); code != 202 || err != nil {
			t.Fatalf("recover = %d %s", code, body)
		}
		if rec.Status != "PENDING" || rec.Table == nil || *rec.Table != "public.orders" || rec.MaxCount == nil || *rec.MaxCount != 5 ||
			rec.PipelineID != p.ID || rec.DestinationID != d1.ID || rec.StartedAt != nil {
			t.Fatalf("recovery = %+v", rec)
		}
		var got recoveryView
		c.must(200, "GET", fmt.Sprintf("%s/dlq/recoveries/%d", base, rec.ID), nil, &got)
		if got.ID != rec.ID || got.Status != "PENDING" {
			t.Fatalf("get recovery = %+v", got)
		}
		stored, err := c.store.GetDLQRecovery(ctx, rec.ID)
		if err != nil || stored.Table != "public.orders" || stored.MaxCount != 5 {
			t.Fatalf("stored = %+v, %v", stored, err)
		}
		c.wantError("POST", base+"/recover-dlq", nil, 409, "", fmt.Sprintf("recovery %d", rec.ID), "already PENDING")
		// The recovery belongs to d1 of this pipeline only.
		c.wantError("GET", fmt.Sprintf("/pipelines/%d/destinations/%d/dlq/recoveries/%d", p.ID, d2.ID, rec.ID), nil, 404, "")
	})

	t.Run("discard one table, then the rest", func(t *testing.T) {
		var res discardView
		c.must(200, "POST", base+"/discard-dlq", map[string]any{"table": "public.customers"}, &res)
		if res.Discarded != 1 || res.Table == nil || *res.Table != "public.customers" {
			t.Fatalf("discard table = %+v", res)
		}
		c.must(200, "POST", base+"/discard-dlq", nil, &res)
		if res.Discarded != 3 || res.Table != nil {
			t.Fatalf("discard all = %+v", res)
		}
		var page dlqPageView
		c.must(200, "GET", base+"/dlq", nil, &page)
		if page.Total != 0 || len(page.Items) != 0 || page.Next != nil {
			t.Fatalf("after discard = %+v", page)
		}
		// The other destination's queue is untouched.
		if st, _ := q.Stats(ctx, src.ID, d2.ID); len(st) != 1 || st[0].Depth != 1 {
			t.Fatalf("other destination = %+v", st)
		}
		if !strings.Contains(c.logs.String(), "dead-letter entries discarded") {
			t.Fatal("discard not logged")
		}
	})

	t.Run("without redis the endpoints say how to enable them", func(t *testing.T) {
		off := newClient(t, f, js, nil)
		var s2, dd idView
		off.must(201, "POST", "/sources", off.sourceBody("s"), &s2)
		off.must(201, "POST", "/destinations", off.pgDestBody("d"), &dd)
		var p2 pipelineView
		off.must(201, "POST", "/pipelines", map[string]any{"name": "p", "source_id": s2.ID, "destination_ids": []int64{dd.ID},
			"tables": []string{"public.orders"}}, &p2)
		b := fmt.Sprintf("/pipelines/%d/destinations/%d", p2.ID, dd.ID)
		off.wantError("GET", b+"/dlq", nil, 409, "", "ROSETTA_REDIS_URL")
		off.wantError("POST", b+"/recover-dlq", nil, 409, "", "ROSETTA_REDIS_URL")
		off.wantError("POST", b+"/discard-dlq", nil, 409, "", "ROSETTA_REDIS_URL")
		var list pipelineDLQView
		off.must(200, "GET", fmt.Sprintf("/pipelines/%d/dlq", p2.ID), nil, &list)
		if list.Enabled || list.Items == nil || len(list.Items) != 0 {
			t.Fatalf("disabled pipeline dlq = %+v", list)
		}
		raw := off.must(200, "GET", fmt.Sprintf("/pipelines/%d", p2.ID), nil, nil)
		if !strings.Contains(string(raw), `"dlq":{"enabled":false,"depth":0,"oldest_at":null,"tables":[]}`) {
			t.Fatalf("disabled detail = %s", raw)
		}
	})

	t.Run("redis down", func(t *testing.T) {
		r.Kill()
		c.wantError("GET", base+"/dlq", nil, 503, "", "Redis", "unavailable")
		c.wantError("POST", base+"/discard-dlq", nil, 503, "", "unavailable")
		c.wantError("GET", fmt.Sprintf("/pipelines/%d/dlq", p.ID), nil, 503, "", "unavailable")
		var detail struct {
			Destinations []struct {
				DLQ dlqSummaryView `json:"dlq"`
			} `json:"destinations"`
		}
		c.must(200, "GET", fmt.Sprintf("/pipelines/%d", p.ID), nil, &detail)
		if sum := detail.Destinations[0].DLQ; !sum.Enabled || !strings.Contains(sum.Error, "unavailable") {
			t.Fatalf("detail with redis down = %+v", sum)
		}
	})
}
