package snapshot

import (
	"encoding/json"
	"strconv"
)

// MsgID is the Nats-Msg-Id of a snapshot message:
//
//	<source>:snap:<job>:<partition>:<first key>:<rows>:<key sum>
//
// first key is the first row's primary key values as a JSON array of
// text (KeyJSON), rows the message's row count and key sum 16 hex digits
// of keySum over every row's key. A job resumed from its checkpoint
// re-reads a batch it may have published before its crash; if no row of
// the batch was inserted or deleted since, the encoder cuts it into the
// same messages, with the same ids, and JetStream's duplicate window
// drops them. The id names the message's whole key set, not only its
// first key, because a dropped message must hold no row the earlier one
// lacked: with rows deleted in between, a re-read message starting at the
// same key reaches further, and, dropped, would lose the rows past the
// earlier message's end if the crash came before the next message was
// stored. Equal key sets (the earlier message read the same rows at an
// earlier consistent point, every later change of them is in the stream)
// make the drop harmless; past the window, a re-published message is
// applied again and the sinks' version guard makes that harmless too.
func MsgID(sourceID, jobID int64, partition int, first []string, rows int, sum uint64) string {
	b := make([]byte, 0, 64+8*len(first))
	b = strconv.AppendInt(b, sourceID, 10)
	b = append(b, ":snap:"...)
	b = strconv.AppendInt(b, jobID, 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(partition), 10)
	b = append(b, ':')
	b = appendKeyJSON(b, first)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(rows), 10)
	b = append(b, ':')
	const hex = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		b = append(b, hex[(sum>>uint(shift))&0xf])
	}
	return string(b)
}

// keySumStart is keySum's value for no key (FNV-1a's 64-bit offset).
const keySumStart uint64 = 14695981039346656037

// keySum folds key into sum: FNV-1a over each value's length (4 bytes)
// and bytes, so that no two sequences of keys feed it the same bytes. It
// is deterministic across processes and versions (part of MsgID).
func keySum(sum uint64, key []string) uint64 {
	const prime = 1099511628211
	for _, k := range key {
		n := uint32(len(k))
		for i := 0; i < 4; i++ {
			sum ^= uint64(byte(n >> (8 * i)))
			sum *= prime
		}
		for i := 0; i < len(k); i++ {
			sum ^= uint64(k[i])
			sum *= prime
		}
	}
	return sum
}

// KeyJSON encodes a key's text values (the stored resume point).
func KeyJSON(key []string) json.RawMessage { return appendKeyJSON(nil, key) }

// appendKeyJSON appends json.Marshal(key). Key values are mostly numbers
// and plain text, written directly; anything needing an escape goes
// through encoding/json, so the result (part of the Nats-Msg-Id, which
// must not change between versions) is always json.Marshal's.
func appendKeyJSON(dst []byte, key []string) []byte {
	if key == nil {
		return append(dst, "null"...)
	}
	for _, k := range key {
		for i := 0; i < len(k); i++ {
			if c := k[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				b, _ := json.Marshal(key)
				return append(dst, b...)
			}
		}
	}
	dst = append(dst, '[')
	for i, k := range key {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = append(dst, k...)
		dst = append(dst, '"')
	}
	return append(dst, ']')
}
