package contracts

import (
	"encoding/json"
	"os"
	"strconv"
	"testing"
)

// The vectors pin the partition function for taps in other languages
// (contracts/README.md, "Partitions"); a change to them is a contract break.
func TestPartitionGoldenVectors(t *testing.T) {
	b, err := os.ReadFile("testdata/partition-vectors.json")
	if err != nil {
		t.Fatalf("read vectors: %v", err)
	}
	var vectors []struct {
		Key   Row    `json:"key"`
		Hash  uint32 `json:"hash"`
		Mixed uint32 `json:"mixed"`
		P4    int    `json:"partition_of_4"`
		P16   int    `json:"partition_of_16"`
		P64   int    `json:"partition_of_64"`
	}
	if err := json.Unmarshal(b, &vectors); err != nil {
		t.Fatalf("decode vectors: %v", err)
	}
	if len(vectors) < 10 {
		t.Fatalf("%d vectors; want the whole file", len(vectors))
	}
	for _, v := range vectors {
		if got := KeyHash(v.Key); got != v.Hash {
			t.Errorf("KeyHash(%v) = %d; want %d", v.Key, got, v.Hash)
		}
		if got := Mix(v.Hash); got != v.Mixed {
			t.Errorf("Mix(%d) = %d; want %d", v.Hash, got, v.Mixed)
		}
		for p, want := range map[int]int{4: v.P4, 16: v.P16, 64: v.P64} {
			if got := Partition(v.Key, p); got != want {
				t.Errorf("Partition(%v, %d) = %d; want %d", v.Key, p, got, want)
			}
		}
	}
}

func TestPartitionProperties(t *testing.T) {
	row := func(s string) Row {
		var r Row
		if err := json.Unmarshal([]byte(s), &r); err != nil {
			t.Fatalf("row %s: %v", s, err)
		}
		return r
	}
	for _, tt := range []struct {
		name     string
		a, b     string
		sameHash bool
	}{
		{"escaped and raw text are one value", `{"k":"caf\u00e9"}`, `{"k":"café"}`, true},
		{"column order does not matter", `{"a":1,"b":2}`, `{"b":2,"a":1}`, true},
		{"whitespace around a value does not matter", `{"k": 5 }`, `{"k":5}`, true},
		{"the length prefix separates values", `{"a":"x","b":"yz"}`, `{"a":"xy","b":"z"}`, false},
		{"null is not the empty string", `{"k":null}`, `{"k":""}`, false},
		{"values, not names, are hashed", `{"a":1}`, `{"b":1}`, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ha, hb := KeyHash(row(tt.a)), KeyHash(row(tt.b))
			if (ha == hb) != tt.sameHash {
				t.Errorf("KeyHash(%s) = %d, KeyHash(%s) = %d; same = %v, want %v", tt.a, ha, tt.b, hb, ha == hb, tt.sameHash)
			}
		})
	}
	if got := Partition(nil, 8); got != 0 {
		t.Errorf("Partition(no key, 8) = %d; want 0", got)
	}
	if got := Partition(row(`{"id":1}`), 1); got != 0 {
		t.Errorf("Partition(key, 1) = %d; want 0", got)
	}
	// Keys spread evenly, within 10% of the mean, also those whose bytes
	// differ only above their low bits (which a bare FNV-1a mod 2^k
	// ignores: "A", "E", "I" … would share one partition of 4).
	for _, tt := range []struct {
		name string
		key  func(i int) json.RawMessage
	}{
		{"sequential integers", func(i int) json.RawMessage { return json.RawMessage(strconv.Itoa(i)) }},
		{"multiples of 64", func(i int) json.RawMessage { return json.RawMessage(strconv.Itoa(64 * i)) }},
		{"text differing in high bits", func(i int) json.RawMessage {
			return json.RawMessage(strconv.Quote(string([]byte{'A' + byte(i%4)*4, 'A' + byte(i/4%4)*4, 'A' + byte(i/16%4)*4,
				'A' + byte(i/64%4)*4, 'A' + byte(i/256%4)*4, 'A' + byte(i/1024%4)*4, 'A' + byte(i/4096%4)*4, 'A' + byte(i/16384%4)*4})))
		}},
	} {
		for _, parts := range []int{4, 8, 64} {
			const n = 40000
			counts := make([]int, parts)
			for i := range n {
				counts[Partition(Row{"id": tt.key(i)}, parts)]++
			}
			for p, c := range counts {
				if c < n/parts*85/100 || c > n/parts*115/100 {
					t.Errorf("%s over %d partitions: partition %d holds %d of %d keys; want about %d", tt.name, parts, p, c, n, n/parts)
				}
			}
		}
	}
}

func TestPartitionConsumerNames(t *testing.T) {
	for _, tt := range []struct {
		partition, partitions int
		want                  string
	}{
		{0, 1, "pipeline_5_dest_12"},
		{0, 4, "pipeline_5_dest_12_p0"},
		{3, 4, "pipeline_5_dest_12_p3"},
	} {
		name := PartitionConsumerName(5, 12, tt.partition, tt.partitions)
		if name != tt.want {
			t.Errorf("PartitionConsumerName(5, 12, %d, %d) = %q; want %q", tt.partition, tt.partitions, name, tt.want)
		}
		p, d, part, ok := ParsePartitionConsumerName(name)
		if !ok || p != 5 || d != 12 || part != tt.partition {
			t.Errorf("ParsePartitionConsumerName(%q) = %d, %d, %d, %v", name, p, d, part, ok)
		}
	}
	for _, bad := range []string{"pipeline_5_dest_12_p", "pipeline_5_dest_12_p01", "pipeline_5_dest_12_p64", "pipeline_5_dest_12_px", "tap_p1"} {
		if _, _, _, ok := ParsePartitionConsumerName(bad); ok {
			t.Errorf("ParsePartitionConsumerName(%q) ok; want refused", bad)
		}
	}
}
