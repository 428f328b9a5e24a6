package api

import (
	"fmt"
	"net"
	"sync/atomic"
	"testing"

	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestCredentialsStayBound checks that a source's stored password is never
// sent to a new place: a PUT moving the source (host, port, database, user
// or sslmode) without the password is a 422 naming it, and nothing
// connects to the new host (a listener counts connections).
func TestCredentialsStayBound(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	_, js := testkit.StartNATS(t).Connect(t)
	f := &fixture{pg: pg, js: js, sourceDB: pg.CreateDatabase(t, "source")}
	c := newClient(t, f, js, nil)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns atomic.Int64
	go func() {
		for {
			cn, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			cn.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	var src idView
	c.must(201, "POST", "/sources", c.sourceBody("s"), &src)
	path := fmt.Sprintf("/sources/%d", src.ID)
	for field, v := range map[string]any{"port": port, "host": "localhost", "database": "other", "user": "someone", "sslmode": "require"} {
		body := c.sourceBody("s")
		delete(body, "password")
		body[field] = v
		if field == "host" {
			body["port"] = port
		}
		c.wantError("PUT", path, body, 422, "password", field+" changed", "send the password again")
	}
	if n := conns.Load(); n != 0 {
		t.Fatalf("the new host received %d connections", n)
	}
	// A rename keeps the password; with it, a move is checked as usual.
	body := c.sourceBody("renamed")
	delete(body, "password")
	c.must(200, "PUT", path, body, nil)
	body = c.sourceBody("renamed")
	body["port"] = port
	if code, raw := c.do("PUT", path, body); code != 422 {
		t.Fatalf("move with the password to a non-PostgreSQL port: %d %s", code, raw)
	}
	if conns.Load() == 0 {
		t.Fatal("with the password given, the new host was not checked")
	}
}
