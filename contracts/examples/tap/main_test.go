package main

import (
	"bytes"
	"os"
	"testing"
)

// TestPrintChanges: the tap prints every change of a version 2 message,
// and the one change of a version 1 message, from the golden files.
func TestPrintChanges(t *testing.T) {
	for file, want := range map[string]string{
		"../../testdata/golden/v2/transaction.json": "10:00:00.123 c public.documents key={\"id\":41} commit_lsn=0/1A2B4F0 seq=1\n" +
			"10:00:00.123 u public.documents key={\"id\":42} commit_lsn=0/1A2B4F0 seq=2\n" +
			"10:00:00.123 u public.documents key={\"id\":44} commit_lsn=0/1A2B4F0 seq=3\n" +
			"10:00:00.123 d public.documents key={\"id\":40} commit_lsn=0/1A2B4F0 seq=4\n",
		"../../testdata/golden/delete.json": "10:00:01.000 d public.documents key={\"id\":42} commit_lsn=0/1A2B600 seq=1\n",
	} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := printChanges(&out, data); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if out.String() != want {
			t.Fatalf("%s: printed\n%s\nwant\n%s", file, out.String(), want)
		}
	}
	if err := printChanges(&bytes.Buffer{}, []byte(`{"v":3}`)); err == nil {
		t.Fatal("an unknown envelope version printed")
	}
}
