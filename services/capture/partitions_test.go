package capture

import (
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// testPartitions: with partitions set on the source, every change is
// published on the partition of its key (a key change on its new key's),
// a truncate on partition 0, and the Nats-Msg-Id names the partition.
func testPartitions(t *testing.T, pg *testkit.Postgres, js jetstream.JetStream) {
	e := newEnv(t, pg, js, 1006, `CREATE TABLE items (id int PRIMARY KEY, name text);`)
	e.src.Partitions = 4
	e.store.sources[0].Partitions = 4
	e.store.setPipeline(configstore.Pipeline{ID: 1, SourceID: e.src.ID, DestinationIDs: []int64{1},
		Tables: []string{"public.items"}, Status: configstore.StatusStart})
	e.start(testConfig())
	e.waitActive(true)

	// A key change whose old and new keys are on different partitions.
	from, to := 1, 2
	for contracts.Partition(idKey(from), 4) == contracts.Partition(idKey(to), 4) {
		to++
	}
	e.exec(`INSERT INTO items SELECT g, 'n' FROM generate_series(1, 20) g`)
	e.exec(`DELETE FROM items WHERE id = $1`, to)
	e.exec(`UPDATE items SET id = $1 WHERE id = $2`, to, from)
	e.exec(`TRUNCATE items`)
	msgs := e.waitMsgs(23)

	// The 20 inserts are one message per partition; each later
	// transaction is one message.
	if n := messages(msgs); n != 4+3 {
		t.Errorf("23 changes in %d messages, want 7", n)
	}
	used := map[int]int{}
	for i, m := range msgs {
		c := m.change
		want := contracts.Partition(c.Key, 4)
		if c.Op == contracts.OpTruncate && want != 0 {
			t.Errorf("message %d: truncate on partition %d", i, want)
		}
		if m.subject != contracts.ChangeSubject(e.src.ID, "public", "items", want) {
			t.Errorf("message %d (%s %s): subject %s; want partition %d", i, c.Op, rowJSON(c.Key), m.subject, want)
		}
		if m.msgID != contracts.MessageID(e.src.ID, c.Source.CommitLSN, "public", "items", want, 0) {
			t.Errorf("message %d: Nats-Msg-Id %s", i, m.msgID)
		}
		used[want]++
	}
	if len(used) != 4 {
		t.Errorf("changes used partitions %v; want all 4", used)
	}
	moved := msgs[21].change
	if moved.Op != contracts.OpUpdate || rowJSON(moved.Key) != fmt.Sprintf(`{"id":%d}`, to) ||
		msgs[21].subject != contracts.ChangeSubject(e.src.ID, "public", "items", contracts.Partition(idKey(to), 4)) {
		t.Errorf("key change %d -> %d: %s %s on %s", from, to, moved.Op, rowJSON(moved.Key), msgs[21].subject)
	}
}

func idKey(id int) contracts.Row { return contracts.Row{"id": []byte(fmt.Sprint(id))} }
