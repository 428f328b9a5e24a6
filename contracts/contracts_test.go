package contracts

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	return compileSchemaDef(t, "")
}

// TestGoldenEventsMatchSchemaAndTypes checks each golden event against the
// schema and that the Go types round-trip it without losing a field.
func TestGoldenEventsMatchSchemaAndTypes(t *testing.T) {
	s := compileSchema(t)
	files, _ := filepath.Glob("testdata/golden/*.json")
	if len(files) == 0 {
		t.Fatal("no golden events")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Validate(inst); err != nil {
				t.Fatalf("golden event does not match schema: %v", err)
			}
			var c Change
			if err := json.Unmarshal(raw, &c); err != nil {
				t.Fatal(err)
			}
			again, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			var a, b any
			json.Unmarshal(raw, &a)
			json.Unmarshal(again, &b)
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			if !bytes.Equal(ja, jb) {
				t.Fatalf("round trip through Change changed the event:\n%s\n%s", ja, jb)
			}
		})
	}
}

func TestSchemaRejectsBrokenEvents(t *testing.T) {
	s := compileSchema(t)
	cases := map[string]string{
		"unknown op":           `{"v":1,"op":"x","source":{"source_id":1,"db":"d","schema":"s","table":"t","lsn":"0/1","commit_lsn":"0/1","seq":1,"commit_time":"2026-01-01T00:00:00Z"}}`,
		"insert without after": `{"v":1,"op":"c","source":{"source_id":1,"db":"d","schema":"s","table":"t","lsn":"0/1","commit_lsn":"0/1","seq":1,"commit_time":"2026-01-01T00:00:00Z"},"key":{"id":1},"columns":[]}`,
		"bad lsn":              `{"v":1,"op":"t","source":{"source_id":1,"db":"d","schema":"s","table":"t","lsn":"zz","commit_lsn":"0/1","seq":1,"commit_time":"2026-01-01T00:00:00Z"}}`,
		"nested value":         `{"v":1,"op":"c","source":{"source_id":1,"db":"d","schema":"s","table":"t","lsn":"0/1","commit_lsn":"0/1","seq":1,"commit_time":"2026-01-01T00:00:00Z"},"key":{"id":1},"after":{"id":{"x":1}},"columns":[]}`,
	}
	for name, ev := range cases {
		t.Run(name, func(t *testing.T) {
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(ev)))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Validate(inst); err == nil {
				t.Fatal("schema accepted a broken event")
			}
		})
	}
}

func TestTokenEncodingRoundTrips(t *testing.T) {
	cases := []struct{ in, want string }{
		{"orders", "orders"},
		{"Order_Items-2", "Order_Items-2"},
		{"my.table", "my%2Etable"},
		{"with space", "with%20space"},
		{"wild*card>", "wild%2Acard%3E"},
		{"100%", "100%25"},
		{"", "%"},
		{"café", "caf%C3%A9"},
	}
	for _, c := range cases {
		got := EncodeToken(c.in)
		if got != c.want {
			t.Errorf("EncodeToken(%q) = %q, want %q", c.in, got, c.want)
		}
		back, err := DecodeToken(got)
		if err != nil || back != c.in {
			t.Errorf("DecodeToken(%q) = %q, %v; want %q", got, back, err, c.in)
		}
	}
	if s := ChangeSubject(7, "public", "a.b", 0); s != "rosetta.cdc.7.public.a%2Eb.0" {
		t.Errorf("ChangeSubject = %q", s)
	}
}

func TestLSNRoundTrip(t *testing.T) {
	for _, s := range []string{"0/0", "0/16B3748", "16/B374D848", "FFFFFFFF/FFFFFFFF"} {
		v, err := ParseLSN(s)
		if err != nil {
			t.Fatalf("ParseLSN(%q): %v", s, err)
		}
		if got := FormatLSN(v); got != s {
			t.Errorf("FormatLSN(ParseLSN(%q)) = %q", s, got)
		}
	}
	if _, err := ParseLSN("nope"); err == nil {
		t.Error("ParseLSN accepted garbage")
	}
	a := Version{LSN: 10, Seq: 2}
	if !a.Less(Version{LSN: 10, Seq: 3}) || !a.Less(Version{LSN: 11, Seq: 1}) || a.Less(a) {
		t.Error("Version.Less ordering wrong")
	}
}
