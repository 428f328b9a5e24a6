package contracts

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// compileSchemaDef compiles one definition of the change schema, such as
// "#/$defs/change": what a reader of expanded changes validates against.
func compileSchemaDef(t *testing.T, def string) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(ChangeEventSchema))
	if err != nil {
		t.Fatalf("parse schema: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("change-event.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("change-event.schema.json" + def)
	if err != nil {
		t.Fatalf("compile schema %s: %v", def, err)
	}
	return s
}

func validate(t *testing.T, s *jsonschema.Schema, raw []byte) error {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse %s: %v", raw, err)
	}
	return s.Validate(inst)
}

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(x, y)
}

// TestGoldenMessagesMatchSchemaAndTypes checks each golden version 2
// message against the schema, that contracts.Message round-trips it
// without losing a field, that DecodeMessage and the encoder agree with
// it, and that each of its changes expanded (All) is a valid version 1
// change: what `rosetta tail --json` prints.
func TestGoldenMessagesMatchSchemaAndTypes(t *testing.T) {
	s := compileSchema(t)
	changeSchema := compileSchemaDef(t, "#/$defs/change")
	files, _ := filepath.Glob("testdata/golden/v2/*.json")
	if len(files) == 0 {
		t.Fatal("no golden messages")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := validate(t, s, raw); err != nil {
				t.Fatalf("golden message does not match schema: %v", err)
			}
			var m Message
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			again, err := json.Marshal(&m)
			if err != nil {
				t.Fatal(err)
			}
			if !sameJSON(t, raw, again) {
				t.Fatalf("round trip through Message changed the message:\n%s\n%s", raw, again)
			}
			dm, err := DecodeMessage(raw)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(dm, &m) {
				t.Fatalf("DecodeMessage = %+v, want %+v", dm, m)
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, raw); err != nil {
				t.Fatal(err)
			}
			var cm Message
			if err := json.Unmarshal(compact.Bytes(), &cm); err != nil {
				t.Fatal(err)
			}
			enc, err := cm.AppendJSON(nil)
			if err != nil {
				t.Fatal(err)
			}
			if !sameJSON(t, raw, enc) {
				t.Fatalf("Message.AppendJSON wrote another message:\n%s\n%s", raw, enc)
			}
			n := 0
			for i, c := range m.All() {
				if i != n {
					t.Fatalf("All yielded index %d, want %d", i, n)
				}
				n++
				c.V = EnvelopeVersion
				line, err := json.Marshal(c)
				if err != nil {
					t.Fatal(err)
				}
				if err := validate(t, changeSchema, line); err != nil {
					t.Fatalf("change %d expanded is not a version 1 change: %v\n%s", i, err, line)
				}
				if err := validate(t, s, line); err != nil {
					t.Fatalf("change %d expanded is not a change message: %v", i, err)
				}
			}
			if n != len(m.Changes) {
				t.Fatalf("All yielded %d changes of %d", n, len(m.Changes))
			}
		})
	}
}

// TestGoldenEventsDecodeAsMessages: every version 1 golden event reads
// through DecodeMessage as a message of its one change, unchanged but for
// the version.
func TestGoldenEventsDecodeAsMessages(t *testing.T) {
	files, _ := filepath.Glob("testdata/golden/*.json")
	if len(files) == 0 {
		t.Fatal("no golden events")
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var want Change
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatal(err)
		}
		m, err := DecodeMessage(raw)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(m.Changes) != 1 {
			t.Fatalf("%s: %d changes, want 1", f, len(m.Changes))
		}
		for _, got := range m.All() {
			got.V = want.V
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: got %+v\nwant %+v", f, got, want)
			}
		}
	}
}

// TestEncodedMessagesMatchSchema: what the version 2 encoder writes, for
// every op and hostile names and values, is valid under the schema.
func TestEncodedMessagesMatchSchema(t *testing.T) {
	s := compileSchema(t)
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 2, 40} {
		data, err := MessageOf(messageChanges(rng, n)).AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate(t, s, data); err != nil {
			t.Fatalf("a message of %d changes does not match the schema: %v\n%s", n, err, data)
		}
	}
}

func TestSchemaRejectsBrokenMessages(t *testing.T) {
	s := compileSchema(t)
	const src = `"source":{"source_id":1,"db":"d","schema":"s","table":"t","commit_lsn":"0/1","commit_time":"2026-01-01T00:00:00Z"}`
	const cols = `"columns":[{"name":"id","type":"bigint","base_type":"bigint","key":true}]`
	for name, msg := range map[string]string{
		"unknown version":      `{"v":3,` + src + `,` + cols + `,"changes":[{"op":"c","seq":1,"lsn":"0/1","key":{"id":1},"after":{"id":1}}]}`,
		"no changes":           `{"v":2,` + src + `,` + cols + `}`,
		"empty changes":        `{"v":2,` + src + `,` + cols + `,"changes":[]}`,
		"insert without cols":  `{"v":2,` + src + `,"changes":[{"op":"c","seq":1,"lsn":"0/1","key":{"id":1},"after":{"id":1}}]}`,
		"insert without after": `{"v":2,` + src + `,` + cols + `,"changes":[{"op":"c","seq":1,"lsn":"0/1","key":{"id":1}}]}`,
		"entry without lsn":    `{"v":2,` + src + `,` + cols + `,"changes":[{"op":"d","seq":1,"key":{"id":1}}]}`,
		"entry with source":    `{"v":2,` + src + `,` + cols + `,"changes":[{"op":"d","seq":1,"lsn":"0/1","key":{"id":1},` + src + `}]}`,
		"source with lsn":      `{"v":2,"source":{"source_id":1,"db":"d","schema":"s","table":"t","lsn":"0/1","commit_lsn":"0/1","commit_time":"2026-01-01T00:00:00Z"},` + cols + `,"changes":[{"op":"t","seq":1,"lsn":"0/1"}]}`,
		"truncate with key":    `{"v":2,` + src + `,"changes":[{"op":"t","seq":1,"lsn":"0/1","key":{"id":1}}]}`,
		"v1 fields in v2":      `{"v":2,"op":"c",` + src + `,` + cols + `,"changes":[{"op":"t","seq":1,"lsn":"0/1"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			if err := validate(t, s, []byte(msg)); err == nil {
				t.Fatal("schema accepted a broken message")
			}
		})
	}
}
