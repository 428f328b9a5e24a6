package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/natsx"
)

// audit keeps every change of a source in the stream (an unacked durable
// consumer holds interest) so that a failing test can show what was
// published for the rows that differ.
type audit struct {
	js       jetstream.JetStream
	sourceID int64
}

func startAudit(t *testing.T, url string, sourceID int64, opts ...nats.Option) *audit {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, js, err := natsx.ConnectWith(ctx, url, "audit", nil, natsx.Liveness{}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := natsx.EnsureSourceStream(ctx, js, sourceID, natsx.StreamLimits{}); err != nil {
		t.Fatal(err)
	}
	_, err = js.CreateOrUpdateConsumer(ctx, contracts.StreamName(sourceID), jetstream.ConsumerConfig{
		Durable: "audit", AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &audit{js: js, sourceID: sourceID}
}

// dump returns the stored changes of table whose key JSON contains keyText.
func (a *audit) dump(table, keyText string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := a.js.Stream(ctx, contracts.StreamName(a.sourceID))
	if err != nil {
		return err.Error()
	}
	info, _ := s.Info(ctx)
	var b strings.Builder
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		// A message holds one table's changes of one transaction.
		msg, err := contracts.DecodeMessage(m.Data)
		if err != nil || msg.Source.Table != table {
			continue
		}
		for i, c := range msg.All() {
			k, _ := json.Marshal(c.Key)
			if strings.Contains(string(k), keyText) {
				fmt.Fprintf(&b, "seq=%d.%d id=%s op=%s change_seq=%d key=%s after=%s\n", seq, i, m.Header.Get(jetstream.MsgIDHeader), c.Op,
					c.Source.Seq, k, mustJSON(c.After))
			}
		}
	}
	return b.String()
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// dumpRows shows the stored changes of the customers rows named at the
// start of the rows quoted in a diff message ("<id>|…").
func (a *audit) dumpRows(diff string) string {
	var b strings.Builder
	seen := map[string]bool{}
	for _, part := range strings.Split(diff, "\"")[1:] {
		id, _, ok := strings.Cut(part, "|")
		if !ok || seen[id] || len(seen) >= 4 {
			continue
		}
		seen[id] = true
		fmt.Fprintf(&b, "key %s:\n%s", id, a.dump("customers", "{\"id\":"+id+"}"))
	}
	return b.String()
}
