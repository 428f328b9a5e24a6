package duckdb

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	t.Parallel()
	cfg, err := ParseConfig(json.RawMessage(`{"path":"/data/a.duckdb","name":"ignored"}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Config{Path: "/data/a.duckdb", Schema: "main", ReleaseAfter: time.Second, MaxHold: 30 * time.Second,
		ReaderWindow: time.Second, LockTimeout: 30 * time.Second, DroppedColumns: DroppedKeep}); cfg != want {
		t.Errorf("defaults: got %+v, want %+v", cfg, want)
	}
	cfg, err = ParseConfig(json.RawMessage(`{"path":"rel/a.db","schema":"analytics","release_after":"0s","max_hold":"0","reader_window":"250ms","lock_timeout":"1m"}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Schema != "analytics" || cfg.ReleaseAfter != 0 || cfg.MaxHold != 0 || cfg.ReaderWindow != 250*time.Millisecond || cfg.LockTimeout != time.Minute {
		t.Errorf("explicit values not applied: %+v", cfg)
	}
	tests := []struct{ raw, want string }{
		{`{}`, "path is empty"},
		{`{"path":":memory:"}`, "in-memory"},
		{`{"path":"/a.db?access_mode=READ_ONLY"}`, "may not contain"},
		{`{"path":"/a.db","schema":"_rosetta"}`, "reserved"},
		{`{"path":"/a.db","release_after":"soon"}`, "release_after"},
		{`{"path":"/a.db","lock_timeout":"-1s"}`, "lock_timeout -1s is negative"},
		{`{"path":"/a.db","max_hold":5}`, "decode"},
		{`{"path":"/a.db","dropped_columns":"forget"}`, "dropped_columns"},
		{`[]`, "decode"},
	}
	for _, tt := range tests {
		_, err := ParseConfig(json.RawMessage(tt.raw))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseConfig(%s) = %v, want error containing %q", tt.raw, err, tt.want)
		}
	}
}
