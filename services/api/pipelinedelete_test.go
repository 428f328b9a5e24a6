package api

import (
	"context"
	"fmt"
	"testing"

	"github.com/rosettacdc/rosetta/pkg/dlq"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestDeletePipelineDeadLetters deletes pipelines through the API over a
// real Redis: a pipeline whose queues hold entries is kept (409 naming the
// count and the confirmation) until the delete is confirmed, which removes
// its streams, their msg_id indexes and table sets; a queue another
// pipeline shares is left alone; without Redis answering nothing is
// deleted.
func TestDeletePipelineDeadLetters(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	_, js := testkit.StartNATS(t).Connect(t)
	r := testkit.StartRedis(t)
	ctx := context.Background()
	f := &fixture{pg: pg, js: js, sourceDB: pg.CreateDatabase(t, "source"), destDB: pg.CreateDatabase(t, "dest")}
	pg.Exec(t, f.sourceDB, `CREATE TABLE public.orders (id text PRIMARY KEY, name text);
		CREATE TABLE public.customers (id text PRIMARY KEY, name text)`)
	rc := redisClient(t, r)
	prefix := "del" + testkit.RandomSuffix()
	q, err := dlq.New(rc, dlq.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, f, js, RedisPinger(rc))
	c.srv.UseDeadLetters(q)

	var src, d1, d2, d3 idView
	c.must(201, "POST", "/sources", c.sourceBody("src"), &src)
	c.must(201, "POST", "/destinations", c.pgDestBody("d1"), &d1)
	c.must(201, "POST", "/destinations", c.pgDestBody("d2"), &d2)
	c.must(201, "POST", "/destinations", c.pgDestBody("d3"), &d3)
	pipeline := func(name string, dests ...int64) int64 {
		var p pipelineView
		c.must(201, "POST", "/pipelines", map[string]any{"name": name, "source_id": src.ID, "destination_ids": dests,
			"tables": []string{"public.orders", "public.customers"}}, &p)
		return p.ID
	}
	add := func(dest, pipelineID int64, table string, seq int64) {
		t.Helper()
		if _, _, err := q.Add(ctx, dlqEntry(t, src.ID, dest, pipelineID, table, seq, fmt.Sprint(seq), "bad")); err != nil {
			t.Fatal(err)
		}
	}
	keys := func(dest int64) []string {
		return []string{q.Key(src.ID, "public.orders", dest), q.Key(src.ID, "public.orders", dest) + ":ids",
			q.Key(src.ID, "public.customers", dest), q.Key(src.ID, "public.customers", dest) + ":ids",
			fmt.Sprintf("%s:tables:%d:%d", prefix, src.ID, dest)}
	}
	exists := func(dest int64) int64 { return rc.Exists(ctx, keys(dest)...).Val() }

	p := pipeline("with-letters", d1.ID, d2.ID)
	add(d1.ID, p, "public.orders", 1)
	add(d1.ID, p, "public.customers", 2)
	add(d2.ID, p, "public.orders", 3)
	path := fmt.Sprintf("/pipelines/%d", p)

	for _, tc := range []struct {
		name   string
		query  string
		status int
		field  string
		words  []string
	}{
		{"unconfirmed", "", 409, "discard_dead_letters", []string{"hold 3 entries", fmt.Sprintf("destination %d: 2", d1.ID),
			fmt.Sprintf("destination %d: 1", d2.ID), fmt.Sprintf("DELETE /api/v1/pipelines/%d?discard_dead_letters=true", p)}},
		{"declined", "?discard_dead_letters=false", 409, "discard_dead_letters", []string{"hold 3 entries"}},
		{"not a boolean", "?discard_dead_letters=yes", 400, "discard_dead_letters", []string{"want true or false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.wantError("DELETE", path+tc.query, nil, tc.status, tc.field, tc.words...)
			c.must(200, "GET", path, nil, nil)
			if n := exists(d1.ID) + exists(d2.ID); n != 8 {
				t.Fatalf("%d queue keys left, want all 8", n)
			}
		})
	}

	t.Run("confirmed", func(t *testing.T) {
		c.must(204, "DELETE", path+"?discard_dead_letters=true", nil, nil)
		c.wantError("GET", path, nil, 404, "", "does not exist")
		if n := exists(d1.ID) + exists(d2.ID); n != 0 {
			t.Fatalf("%d queue keys left after the confirmed delete, want none", n)
		}
	})

	t.Run("empty queues need no confirmation", func(t *testing.T) {
		id := pipeline("no-letters", d1.ID)
		c.must(204, "DELETE", fmt.Sprintf("/pipelines/%d", id), nil, nil)
	})

	t.Run("a shared queue is not the deleted pipeline's", func(t *testing.T) {
		a := pipeline("shares-a", d3.ID)
		b := pipeline("shares-b", d3.ID)
		add(d3.ID, a, "public.orders", 10)
		c.must(204, "DELETE", fmt.Sprintf("/pipelines/%d", a), nil, nil)
		if n := rc.XLen(ctx, q.Key(src.ID, "public.orders", d3.ID)).Val(); n != 1 {
			t.Fatalf("shared queue holds %d entries after deleting one of its pipelines, want 1", n)
		}
		// The last pipeline of the queue needs the confirmation.
		c.wantError("DELETE", fmt.Sprintf("/pipelines/%d", b), nil, 409, "discard_dead_letters", "hold 1 entry")
		c.must(204, "DELETE", fmt.Sprintf("/pipelines/%d?discard_dead_letters=true", b), nil, nil)
		if n := exists(d3.ID); n != 0 {
			t.Fatalf("%d queue keys left, want none", n)
		}
	})

	t.Run("redis down", func(t *testing.T) {
		id := pipeline("redis-down", d1.ID)
		r.Kill()
		for _, query := range []string{"", "?discard_dead_letters=true"} {
			c.wantError("DELETE", fmt.Sprintf("/pipelines/%d%s", id, query), nil, 503, "", "cannot tell whether", "retry when Redis answers")
		}
		c.must(200, "GET", fmt.Sprintf("/pipelines/%d", id), nil, nil)
	})
}
