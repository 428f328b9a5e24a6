package testkit

import (
	"context"
	"net"
	"testing"
)

func TestServersStart(t *testing.T) {
	t.Parallel()
	pg := StartPostgres(t)
	db := pg.CreateDatabase(t, "smoke")
	conn := pg.Connect(t, db)
	var level string
	if err := conn.QueryRow(context.Background(), "SHOW wal_level").Scan(&level); err != nil {
		t.Fatal(err)
	}
	if level != "logical" {
		t.Fatalf("wal_level = %q, want logical", level)
	}
	r := StartRedis(t)
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatalf("redis: %v", err)
	}
	c.Close()
	n := StartNATS(t)
	_, js := n.Connect(t)
	if _, err := js.AccountInfo(context.Background()); err != nil {
		t.Fatalf("jetstream: %v", err)
	}
}
