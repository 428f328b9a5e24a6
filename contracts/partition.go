package contracts

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
)

// Partitions bound the partitions of a source (its "partitions" setting).
const (
	MinPartitions     = 1
	MaxPartitions     = 64
	DefaultPartitions = 1
)

// KeyHash is the stable hash a change's partition is taken from: 32-bit
// FNV-1a over the change's key, defined byte for byte in contracts/README.md
// ("Partitions") so that a tap in any language computes the same value:
//
//   - the key's columns are taken in byte order of their names (the "key"
//     object alone decides, not the table's column order);
//   - each value contributes a 4-byte big-endian length and then its
//     canonical text: a JSON string's decoded content (UTF-8), a number's
//     or boolean's JSON text as written (PostgreSQL's integer text);
//   - a null value contributes the length 0xFFFFFFFF and no bytes.
//
// Column names are not hashed. An empty key hashes to FNV-1a's offset
// basis, 2166136261.
func KeyHash(key Row) uint32 {
	h := uint32(fnvOffset)
	if len(key) == 0 {
		return h
	}
	names := make([]string, 0, len(key))
	for name := range key {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		h = hashValue(h, key[name])
	}
	return h
}

// Partition is the partition, in [0, partitions), of a change whose key is
// key: Mix(KeyHash(key)) mod partitions. A change without a key (a
// truncate, a row of a table without a replica identity key) is on
// partition 0, as is every change when partitions is 1 or less.
func Partition(key Row, partitions int) int {
	if partitions <= 1 || len(key) == 0 {
		return 0
	}
	return int(Mix(KeyHash(key)) % uint32(partitions))
}

// Mix is MurmurHash3's 32-bit finalizer (fmix32). FNV-1a's low bits
// depend only on the low bits of each byte ("A" and "E" end alike in their
// two lowest bits, so a bare FNV-1a mod 4 puts them on one partition);
// mixing first makes every bit of the hash decide the partition.
func Mix(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

const (
	fnvOffset = 2166136261
	fnvPrime  = 16777619
)

func fnvBytes(h uint32, b []byte) uint32 {
	for _, c := range b {
		h ^= uint32(c)
		h *= fnvPrime
	}
	return h
}

func fnvLength(h uint32, n uint32) uint32 {
	return fnvBytes(h, []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// hashValue hashes one key value's length and canonical text.
func hashValue(h uint32, v json.RawMessage) uint32 {
	v = trimJSONSpace(v)
	switch {
	case len(v) == 0 || string(v) == "null":
		return fnvLength(h, 0xFFFFFFFF)
	case v[0] == '"':
		text := v[1 : len(v)-1]
		if slices.Contains(text, '\\') {
			var s string
			if err := json.Unmarshal(v, &s); err == nil {
				text = []byte(s)
			}
		}
		return fnvBytes(fnvLength(h, uint32(len(text))), text)
	default:
		return fnvBytes(fnvLength(h, uint32(len(v))), v)
	}
}

func trimJSONSpace(v []byte) []byte {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	for len(v) > 0 && isSpace(v[0]) {
		v = v[1:]
	}
	for len(v) > 0 && isSpace(v[len(v)-1]) {
		v = v[:len(v)-1]
	}
	return v
}

// PartitionConsumerName is the durable consumer of one partition of a
// pipeline's destination. With one partition it is ConsumerName, so that
// installations from before partitions keep their consumer and its
// position; partition p of several is ConsumerName + "_p<p>".
func PartitionConsumerName(pipelineID, destinationID int64, partition, partitions int) string {
	if partitions <= 1 {
		return ConsumerName(pipelineID, destinationID)
	}
	return ConsumerName(pipelineID, destinationID) + "_p" + strconv.Itoa(partition)
}

// ParsePartitionConsumerName is PartitionConsumerName's inverse: a name
// without a partition suffix (ConsumerName's) is partition 0. ok is false
// for a name neither made.
func ParsePartitionConsumerName(name string) (pipelineID, destinationID int64, partition int, ok bool) {
	if p, d, ok := ParseConsumerName(name); ok {
		return p, d, 0, true
	}
	i := strings.LastIndex(name, "_p")
	if i < 0 {
		return 0, 0, 0, false
	}
	p, d, ok := ParseConsumerName(name[:i])
	if !ok {
		return 0, 0, 0, false
	}
	part, err := strconv.Atoi(name[i+2:])
	if err != nil || part < 0 || part >= MaxPartitions || strconv.Itoa(part) != name[i+2:] {
		return 0, 0, 0, false
	}
	return p, d, part, true
}
