package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// publishCounter counts the changes capture published, per source.
type publishCounter struct {
	mu        sync.Mutex
	published map[int64]int
}

func (m *publishCounter) ChangePublished(id int64, _, _ string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.published[id]++
}
func (m *publishCounter) SlotConfirmed(int64, uint64, uint64) {}
func (m *publishCounter) Error(string, string)                {}
func (m *publishCounter) TransactionStreamed(int64)           {}

func (m *publishCounter) count(id int64) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.published[id]
}

// rawMsg is a stored message as published.
type rawMsg struct {
	subject, id string
	seq         uint64
	body        []byte
}

// rawMsgs reads every message of the env's stream, in order.
func (e *env) rawMsgs() []rawMsg {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := e.js.Stream(ctx, contracts.StreamName(e.src.ID))
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []rawMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // acknowledged by every consumer (interest retention)
		}
		if err != nil {
			e.t.Fatalf("get message %d: %v", seq, err)
		}
		out = append(out, rawMsg{subject: m.Subject, id: m.Header.Get(jetstream.MsgIDHeader), seq: seq, body: m.Data})
	}
	return out
}

// TestBatches runs two captures of one database side by side, each with
// its own slot: transactions become version 2 messages cut by change
// count, table, column change and bytes; the two captures, reading the
// same WAL, publish identical messages (subjects, ids, bodies; the source
// id aside); and a capture that restarts from its slot's old position
// re-publishes them all, which JetStream drops as duplicates.
func TestBatches(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	n := testkit.StartNATS(t)
	_, js := n.Connect(t)
	e := newEnv(t, pg, js, 4001, `
CREATE TABLE items (id int PRIMARY KEY, v text);
CREATE TABLE a (id int PRIMARY KEY);
CREATE TABLE b (id int PRIMARY KEY);
CREATE TABLE alt (id int PRIMARY KEY, v text);
CREATE TABLE big (id int PRIMARY KEY, v text);`)
	tables := []string{"public.items", "public.a", "public.b", "public.alt", "public.big"}
	e.store.setPipeline(configstore.Pipeline{ID: 1, SourceID: e.src.ID, DestinationIDs: []int64{1},
		Tables: tables, Status: configstore.StatusStart})
	ref := &env{t: t, pg: pg, js: js, db: e.db, src: e.src, log: e.log}
	ref.src.ID, ref.src.Slot, ref.src.Name, ref.src.Publication = 4002, "cap_"+testkit.RandomSuffix(), "ref", "ref pub"
	ref.store = &memStore{sources: []configstore.Source{ref.src}}
	ref.store.setPipeline(configstore.Pipeline{ID: 2, SourceID: ref.src.ID, DestinationIDs: []int64{1},
		Tables: tables, Status: configstore.StatusStart})

	metrics := &publishCounter{published: map[int64]int{}}
	cfg := testConfig()
	// Nothing is confirmed to e's slot: its restart below reads every
	// transaction again.
	cfg.ConfirmDelay = time.Hour
	cfg.Metrics = metrics
	stop := e.start(cfg)
	ref.start(testConfig())
	e.waitActive(true)
	ref.waitActive(true)

	e.exec(`INSERT INTO items SELECT g, 'row ' || g FROM generate_series(1, 2500) g`)
	e.exec(`BEGIN; INSERT INTO a VALUES (1); INSERT INTO b VALUES (1); INSERT INTO a VALUES (2); COMMIT;`)
	e.exec(`BEGIN;
INSERT INTO alt SELECT g, 'before' FROM generate_series(1, 3) g;
ALTER TABLE alt ADD COLUMN w int;
INSERT INTO alt SELECT g, 'after', g FROM generate_series(4, 6) g;
COMMIT;`)
	// Three rows of 100 kB: two fit in ChunkBytes (256 KiB), the third
	// starts a message.
	e.exec(`INSERT INTO big SELECT g, repeat(chr(96 + g), 100000) FROM generate_series(1, 3) g`)
	const total = 2500 + 3 + 6 + 3
	msgs := e.waitMsgs(total)

	type shape struct {
		table  string
		chunk  int
		n      int
		firstV int64 // the first change's seq
	}
	var got []shape
	chunks := map[string]int{}
	for _, m := range msgs {
		if m.index > 0 {
			continue
		}
		c := m.change
		key := c.Source.CommitLSN + " " + c.Source.Table
		chunk := chunks[key]
		chunks[key]++
		if want := contracts.MessageID(e.src.ID, c.Source.CommitLSN, "public", c.Source.Table, 0, chunk); m.msgID != want {
			t.Errorf("message of %s from seq %d: id %s, want %s", c.Source.Table, c.Source.Seq, m.msgID, want)
		}
		if m.subject != contracts.ChangeSubject(e.src.ID, "public", c.Source.Table, 0) {
			t.Errorf("message of %s: subject %s", c.Source.Table, m.subject)
		}
		got = append(got, shape{c.Source.Table, chunk, m.n, c.Source.Seq})
	}
	want := []shape{
		{"items", 0, 1024, 1}, {"items", 1, 1024, 1025}, {"items", 2, 452, 2049},
		{"a", 0, 2, 1}, {"b", 0, 1, 2},
		{"alt", 0, 3, 1}, {"alt", 1, 3, 4},
		{"big", 0, 2, 1}, {"big", 1, 1, 3},
	}
	if !slices.Equal(got, want) {
		t.Errorf("messages (table, chunk, changes, first seq):\n got %v\nwant %v", got, want)
	}
	// In order within each table, with the columns of their message.
	last := map[string]int64{}
	for _, m := range msgs {
		c := m.change
		if c.Source.Seq <= last[c.Source.CommitLSN+c.Source.Table] {
			t.Fatalf("%s seq %d after seq %d", c.Source.Table, c.Source.Seq, last[c.Source.CommitLSN+c.Source.Table])
		}
		last[c.Source.CommitLSN+c.Source.Table] = c.Source.Seq
		if c.Source.Table == "alt" {
			_, hasW := c.After["w"]
			if cols := len(c.Columns); (c.Source.Seq <= 3) != (cols == 2) || hasW != (cols == 3) {
				t.Errorf("alt change %d: %d columns, after %s", c.Source.Seq, cols, rowJSON(c.After))
			}
		}
	}
	for _, m := range msgs {
		if m.change.Source.Table == "big" && len(m.change.After["v"]) != 100002 {
			t.Errorf("big row %s: value of %d bytes", m.change.Key["id"], len(m.change.After["v"]))
		}
	}

	// The reference capture read the same WAL: the same messages.
	ref.waitMsgs(total)
	mine, theirs := e.rawMsgs(), ref.rawMsgs()
	sameAsRef := func(what string, mine []rawMsg) {
		t.Helper()
		if len(mine) != len(theirs) {
			t.Fatalf("%s: %d messages, the reference capture %d", what, len(mine), len(theirs))
		}
		for i := range mine {
			m, r := mine[i], theirs[i]
			subj := strings.Replace(r.subject, fmt.Sprintf(".%d.", ref.src.ID), fmt.Sprintf(".%d.", e.src.ID), 1)
			id := fmt.Sprint(e.src.ID) + strings.TrimPrefix(r.id, fmt.Sprint(ref.src.ID))
			body := bytes.Replace(r.body, []byte(fmt.Sprintf(`"source_id":%d,`, ref.src.ID)), []byte(fmt.Sprintf(`"source_id":%d,`, e.src.ID)), 1)
			if m.subject != subj || m.id != id || !bytes.Equal(m.body, body) {
				t.Fatalf("%s: message %d differs from the reference capture's:\n%s %s %.300s\n%s %s %.300s", what, i,
					m.subject, m.id, m.body, r.subject, r.id, r.body)
			}
		}
	}
	sameAsRef("first read", mine)

	// Restart e's capture: its slot was never confirmed past the
	// transactions, so PostgreSQL sends them all again and capture
	// publishes every message again, with the same ids.
	eventually(t, 20*time.Second, "every change published", func() (bool, string) {
		return metrics.count(e.src.ID) == total, fmt.Sprint(metrics.count(e.src.ID))
	})
	stop()
	e.waitActive(false)
	e.start(cfg)
	eventually(t, 60*time.Second, "every change published again", func() (bool, string) {
		return metrics.count(e.src.ID) >= 2*total, fmt.Sprint(metrics.count(e.src.ID))
	})
	e.exec(`INSERT INTO a VALUES (3)`) // a marker: everything before it is in
	e.waitMsgs(total + 1)
	again := e.rawMsgs()
	sameAsRef("after a restart that published everything again", again[:len(again)-1])
}
