package capture

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
)

// txChanges builds changes of one transaction; each call of add numbers
// the next change.
type txChanges struct {
	commitLSN string
	seq       int64
	out       []contracts.Change
}

var (
	colsAB  = []contracts.Column{{Name: "id", Type: "integer", BaseType: "integer", Key: true, Attnum: 1}, {Name: "v", Type: "text", BaseType: "text", Attnum: 2}}
	colsABC = append(slices.Clone(colsAB), contracts.Column{Name: "w", Type: "integer", BaseType: "integer", Attnum: 3})
)

func (tx *txChanges) add(table string, cols []contracts.Column, id int, v string) {
	tx.seq++
	tx.out = append(tx.out, contracts.Change{V: contracts.EnvelopeVersion, Op: contracts.OpCreate, Columns: cols,
		Key:   contracts.Row{"id": []byte(fmt.Sprint(id))},
		After: contracts.Row{"id": []byte(fmt.Sprint(id)), "v": []byte(`"` + v + `"`)},
		Source: contracts.Source{SourceID: 7, Database: "db", Schema: "public", Table: table,
			LSN: contracts.FormatLSN(uint64(0x1000 + tx.seq*8)), CommitLSN: tx.commitLSN, Seq: tx.seq, TxID: 99,
			CommitTime: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}})
}

// cut runs changes through a new batcher as one transaction and returns
// the messages in publish order; before reports how many went out before
// the commit.
func cut(t *testing.T, partitions int, changes []contracts.Change) (msgs []outMsg, before int) {
	t.Helper()
	b := newBatcher(partitions)
	collect := func(m *outMsg) error { msgs = append(msgs, *m); return nil }
	for i := range changes {
		if err := b.add(&changes[i]); err != nil {
			t.Fatal(err)
		}
		if err := b.publish(collect); err != nil {
			t.Fatal(err)
		}
	}
	before = len(msgs)
	b.commit()
	if err := b.publish(collect); err != nil {
		t.Fatal(err)
	}
	return msgs, before
}

// shape describes messages as "table:partition:chunk:changes" and checks
// every body decodes to its changes, in order.
func shape(t *testing.T, msgs []outMsg) []string {
	t.Helper()
	var out []string
	for _, m := range msgs {
		if !bytes.HasPrefix(m.body, []byte(`{"v":2,`)) {
			t.Fatalf("%s is not a version 2 message: %.100s", m.id, m.body)
		}
		dm, err := contracts.DecodeMessage(m.body)
		if err != nil {
			t.Fatalf("%s: %v", m.id, err)
		}
		if len(dm.Changes) != m.n {
			t.Fatalf("%s: %d changes, counted %d", m.id, len(dm.Changes), m.n)
		}
		s := &dm.Source
		fields := strings.Split(m.id, ":")
		if want := contracts.MessageID(s.SourceID, s.CommitLSN, s.Schema, s.Table, atoi(t, fields[3]), atoi(t, fields[4])); m.id != want {
			t.Fatalf("id %s, want %s", m.id, want)
		}
		if want := contracts.ChangeSubject(s.SourceID, s.Schema, s.Table, atoi(t, fields[3])); m.subject != want {
			t.Fatalf("%s: subject %s, want %s", m.id, m.subject, want)
		}
		out = append(out, fmt.Sprintf("%s:%s:%s:%d", s.Table, fields[3], fields[4], len(dm.Changes)))
	}
	return out
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}

func TestBatcherCuts(t *testing.T) {
	big := strings.Repeat("x", 100<<10)
	huge := strings.Repeat("y", contracts.ChunkBytes+1)
	for _, tt := range []struct {
		name       string
		partitions int
		build      func(tx *txChanges)
		want       []string
		early      int // messages out before the commit: full ones
	}{
		{"single row", 1, func(tx *txChanges) { tx.add("a", colsAB, 1, "x") }, []string{"a:0:0:1"}, 0},
		{"chunks of ChunkChanges", 1, func(tx *txChanges) {
			for i := range 2500 {
				tx.add("a", colsAB, i, "x")
			}
		}, []string{"a:0:0:1024", "a:0:1:1024", "a:0:2:452"}, 2},
		{"a message per table, in first-change order", 1, func(tx *txChanges) {
			tx.add("b", colsAB, 1, "x")
			tx.add("a", colsAB, 1, "x")
			tx.add("b", colsAB, 2, "x")
		}, []string{"b:0:0:2", "a:0:0:1"}, 0},
		{"a column change starts a message", 1, func(tx *txChanges) {
			tx.add("a", colsAB, 1, "x")
			tx.add("a", colsAB, 2, "x")
			tx.add("a", colsABC, 3, "x")
			tx.add("a", slices.Clone(colsABC), 4, "x") // equal columns, another slice
		}, []string{"a:0:0:2", "a:0:1:2"}, 1},
		{"bytes", 1, func(tx *txChanges) {
			tx.add("a", colsAB, 1, big)
			tx.add("a", colsAB, 2, big)
			tx.add("a", colsAB, 3, big) // would pass ChunkBytes
			tx.add("a", colsAB, 4, huge)
			tx.add("a", colsAB, 5, "x")
		}, []string{"a:0:0:2", "a:0:1:1", "a:0:2:1", "a:0:3:1"}, 3},
		{"partitions", 4, func(tx *txChanges) {
			for i := range 40 {
				tx.add("a", colsAB, i, "x")
			}
		}, nil, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tx := &txChanges{commitLSN: "0/2000"}
			tt.build(tx)
			msgs, before := cut(t, tt.partitions, tx.out)
			got := shape(t, msgs)
			v1, v2 := 0, 0
			for i := range tx.out {
				b, _ := tx.out[i].AppendJSON(nil)
				v1 += len(b)
			}
			for _, m := range msgs {
				v2 += len(m.body)
			}
			t.Logf("%d changes: %d messages of %d bytes; version 1: %d messages of %d bytes", len(tx.out), len(msgs), v2, len(tx.out), v1)
			if tt.want != nil && !slices.Equal(got, tt.want) {
				t.Errorf("messages %v, want %v", got, tt.want)
			}
			if tt.partitions > 1 {
				if len(got) != tt.partitions {
					t.Errorf("messages %v, want one per partition", got)
				}
				for _, m := range msgs {
					dm, _ := contracts.DecodeMessage(m.body)
					for _, c := range dm.All() {
						p := contracts.Partition(c.Key, tt.partitions)
						if m.subject != contracts.ChangeSubject(7, "public", "a", p) {
							t.Fatalf("change of key %s on %s, its partition is %d", c.Key["id"], m.subject, p)
						}
					}
				}
			}
			// Every change once, each table's in order.
			var seqs []int64
			for _, m := range msgs {
				dm, _ := contracts.DecodeMessage(m.body)
				for _, c := range dm.All() {
					seqs = append(seqs, c.Source.Seq)
				}
			}
			slices.Sort(seqs)
			if len(seqs) != len(tx.out) || seqs[0] != 1 || seqs[len(seqs)-1] != int64(len(tx.out)) {
				t.Errorf("%d changes published, want %d", len(seqs), len(tx.out))
			}
			// Only messages that cannot take the next change go out before
			// the commit.
			if before != tt.early {
				t.Errorf("%d messages out before the commit, want %d", before, tt.early)
			}
			// The same changes are cut the same way again: same subjects,
			// ids and bodies.
			again, _ := cut(t, tt.partitions, tx.out)
			if len(again) != len(msgs) {
				t.Fatalf("second cut: %d messages, first %d", len(again), len(msgs))
			}
			for i := range msgs {
				if again[i].subject != msgs[i].subject || again[i].id != msgs[i].id || !bytes.Equal(again[i].body, msgs[i].body) {
					t.Fatalf("second cut differs at message %d: %s %s, first %s %s", i, again[i].subject, again[i].id, msgs[i].subject, msgs[i].id)
				}
			}
		})
	}
}

// TestBatcherTransactions: groups do not outlive their transaction, chunks
// count from 0 in each, and a body is never reused.
func TestBatcherTransactions(t *testing.T) {
	b := newBatcher(1)
	var msgs []outMsg
	collect := func(m *outMsg) error { msgs = append(msgs, *m); return nil }
	for i, lsn := range []string{"0/2000", "0/3000"} {
		tx := &txChanges{commitLSN: lsn}
		tx.add("a", colsAB, i, "x")
		tx.add("a", colsAB, i+10, "x")
		for j := range tx.out {
			if err := b.add(&tx.out[j]); err != nil {
				t.Fatal(err)
			}
		}
		b.commit()
		if err := b.publish(collect); err != nil {
			t.Fatal(err)
		}
	}
	if got := shape(t, msgs); !slices.Equal(got, []string{"a:0:0:2", "a:0:0:2"}) || msgs[0].id == msgs[1].id {
		t.Fatalf("messages %v (%s, %s)", got, msgs[0].id, msgs[1].id)
	}
	if &msgs[0].body[0] == &msgs[1].body[0] {
		t.Fatal("two messages share a body")
	}
	if len(b.groups) != 0 || len(b.order) != 0 || len(b.ready) != 0 {
		t.Fatalf("state left after the commits: %d groups, %d ordered, %d ready", len(b.groups), len(b.order), len(b.ready))
	}
}
