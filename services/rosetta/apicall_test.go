package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// testAPIToken is the bootstrap admin token the tests start Rosetta with.
const testAPIToken = "rosetta-test-api-token-0123456789abcdef"

// apiCaller returns a function that sends a JSON request to the API at
// base with testAPIToken, fails t on a transport error or a status of 300 and above, and
// decodes the answer into out when out is not nil.
func apiCaller(t *testing.T, base string) func(method, path string, body, out any) {
	return func(method, path string, body, out any) {
		t.Helper()
		var r io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			r = bytes.NewReader(b)
		}
		req, _ := http.NewRequestWithContext(t.Context(), method, base+path, r)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+testAPIToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatalf("%s %s: %v: %s", method, path, err, b)
			}
		}
	}
}
