package fakesnowflake

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	sf "github.com/snowflakedb/gosnowflake"
)

// TestQueriesNeedSessionToken talks HTTP directly: without a valid session token a
// query is refused with Snowflake's "session gone" code.
func TestQueriesNeedSessionToken(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	for _, auth := range []string{"", `Snowflake Token="forged"`} {
		req, err := http.NewRequestWithContext(testContext(t), http.MethodPost, srv.URL()+"/queries/v1/query-request",
			strings.NewReader(`{"sqlText":"SELECT 1"}`))
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := (&http.Client{Transport: srv.ClientTransport()}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Success bool   `json:"success"`
			Code    string `json:"code"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if body.Success || body.Code != codeSessionGone {
			t.Fatalf("query with Authorization %q: success=%v code=%s, want 390111", auth, body.Success, body.Code)
		}
	}
}

func TestArrayBinding(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := conn(t, openDB(t, srv, testUser, testKeys()[0]))
	mustExec(t, c, "CREATE TABLE T (ID NUMBER, NAME TEXT)")
	ids := []int64{1, 2, 3}
	names := []string{"a", "b", "c"}
	res := mustExec(t, c, "INSERT INTO T VALUES (?, ?)", sf.Array(&ids), sf.Array(&names))
	if n, err := res.RowsAffected(); err != nil || n != 3 {
		t.Fatalf("array insert affected %d, %v; want 3", n, err)
	}
	got := queryStrings(t, c, "SELECT ID, NAME FROM T ORDER BY ID")
	if len(got) != 3 || got[2][0] != "3" || got[2][1] != "c" {
		t.Fatalf("array-bound rows = %v", got)
	}
}
