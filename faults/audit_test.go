package faults

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
)

// TestAuditMsgID: the audit accepts a message's own Nats-Msg-Id in
// either envelope version and refuses another message's.
func TestAuditMsgID(t *testing.T) {
	ch := func(seq int64) contracts.Change {
		return contracts.Change{V: contracts.MessageVersion, Op: contracts.OpCreate,
			Source: contracts.Source{SourceID: 4, Schema: "public", Table: "my.t", LSN: "0/10", CommitLSN: "0/20", Seq: seq,
				CommitTime: time.Unix(0, 0).UTC()},
			Key: contracts.Row{"id": json.RawMessage("1")}, After: contracts.Row{"id": json.RawMessage("1")}}
	}
	two := contracts.MessageOf([]contracts.Change{ch(1), ch(2)})
	one := contracts.MessageOf([]contracts.Change{ch(3)})
	subject := contracts.ChangeSubject(4, "public", "my.t", 2)
	for _, tc := range []struct {
		m    *contracts.Message
		id   string
		want bool
	}{
		{two, contracts.MessageID(4, "0/20", "public", "my.t", 2, 0), true},
		{two, contracts.MessageID(4, "0/20", "public", "my.t", 2, 5), true},
		{one, contracts.MsgID(4, "0/20", 3), true},
		{one, contracts.MessageID(4, "0/20", "public", "my.t", 2, 1), true},
		{two, contracts.MsgID(4, "0/20", 1), false},
		{two, contracts.MessageID(4, "0/20", "public", "my.t", 1, 0), false},
		{two, contracts.MessageID(4, "0/21", "public", "my.t", 2, 0), false},
		{two, contracts.MessageID(4, "0/20", "public", "t", 2, 0), false},
		{two, "", false},
	} {
		if got := auditMsgID(subject, tc.id, tc.m); got != tc.want {
			t.Errorf("auditMsgID(%s, %q, %d changes) = %v, want %v", subject, tc.id, len(tc.m.Changes), got, tc.want)
		}
	}
}
