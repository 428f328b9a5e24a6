package contracts

import (
	"fmt"
	"strconv"
	"strings"
)

// Subject layout (documented in contracts/README.md):
//
//	rosetta.cdc.<source_id>.<schema>.<table>.<partition>   change events
//	rosetta.config.<kind>.<id>                             config events
//
// Schema and table names are encoded with EncodeToken so that any
// PostgreSQL identifier becomes one safe subject token.
const (
	CDCPrefix    = "rosetta.cdc"
	ConfigPrefix = "rosetta.config"
)

// ChangeSubject is the subject a change of schema.table is published on.
func ChangeSubject(sourceID int64, schema, table string, partition int) string {
	return CDCPrefix + "." + strconv.FormatInt(sourceID, 10) + "." + EncodeToken(schema) + "." +
		EncodeToken(table) + "." + strconv.Itoa(partition)
}

// Subjects caches ChangeSubject for the publishers (capture's batcher,
// backfill's encoder), which need a table partition's subject for every
// message: building it encodes two tokens and allocates. The zero value
// is ready; it is owned by one goroutine and keeps every subject asked for
// (a source's tables times its partitions).
type Subjects struct {
	m map[subjectKey]string
}

type subjectKey struct {
	source        int64
	schema, table string
	partition     int
}

// Change is ChangeSubject(sourceID, schema, table, partition).
func (s *Subjects) Change(sourceID int64, schema, table string, partition int) string {
	k := subjectKey{sourceID, schema, table, partition}
	if sub, ok := s.m[k]; ok {
		return sub
	}
	if s.m == nil {
		s.m = make(map[subjectKey]string)
	}
	sub := ChangeSubject(sourceID, schema, table, partition)
	s.m[k] = sub
	return sub
}

// TableFilter is the subject filter matching every partition of one table.
func TableFilter(sourceID int64, schema, table string) string {
	return CDCPrefix + "." + strconv.FormatInt(sourceID, 10) + "." + EncodeToken(schema) + "." +
		EncodeToken(table) + ".*"
}

// SourceFilter matches every change of one source.
func SourceFilter(sourceID int64) string {
	return CDCPrefix + "." + strconv.FormatInt(sourceID, 10) + ".>"
}

// EncodeToken turns an identifier into a subject token: bytes outside
// [A-Za-z0-9_-] (dots, spaces, wildcards, non-ASCII, and '%' itself) become
// %XX with upper-case hex. The empty string becomes "%". The encoding is
// reversible with DecodeToken.
func EncodeToken(s string) string {
	if s == "" {
		return "%"
	}
	safe := true
	for i := 0; i < len(s); i++ {
		if !tokenSafe(s[i]) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	var b strings.Builder
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if tokenSafe(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xF])
	}
	return b.String()
}

// DecodeToken reverses EncodeToken.
func DecodeToken(tok string) (string, error) {
	if tok == "%" {
		return "", nil
	}
	if !strings.Contains(tok, "%") {
		return tok, nil
	}
	var b strings.Builder
	for i := 0; i < len(tok); i++ {
		if tok[i] != '%' {
			b.WriteByte(tok[i])
			continue
		}
		if i+2 >= len(tok) {
			return "", fmt.Errorf("decode subject token %q: truncated escape", tok)
		}
		v, err := strconv.ParseUint(tok[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("decode subject token %q: %w", tok, err)
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

func tokenSafe(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// StreamName is the JetStream stream holding one source's changes.
func StreamName(sourceID int64) string {
	return "ROSETTA_CDC_" + strconv.FormatInt(sourceID, 10)
}

// ConsumerName is the durable consumer of one pipeline's destination.
func ConsumerName(pipelineID, destinationID int64) string {
	return "pipeline_" + strconv.FormatInt(pipelineID, 10) + "_dest_" + strconv.FormatInt(destinationID, 10)
}

// ParseConsumerName is ConsumerName's inverse; ok is false for a name it
// did not make (a tap's own consumer, say).
func ParseConsumerName(name string) (pipelineID, destinationID int64, ok bool) {
	rest, found := strings.CutPrefix(name, "pipeline_")
	if !found {
		return 0, 0, false
	}
	p, d, found := strings.Cut(rest, "_dest_")
	if !found {
		return 0, 0, false
	}
	pid, err1 := strconv.ParseInt(p, 10, 64)
	did, err2 := strconv.ParseInt(d, 10, 64)
	if err1 != nil || err2 != nil || ConsumerName(pid, did) != name {
		return 0, 0, false
	}
	return pid, did, true
}

// ConfigStreamName is the stream holding config events.
const ConfigStreamName = "ROSETTA_CONFIG"
