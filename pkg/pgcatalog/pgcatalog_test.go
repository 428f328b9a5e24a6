package pgcatalog

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/pglink"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

func endpoint(pg *testkit.Postgres, db, user string) Endpoint {
	return Endpoint{Host: pg.Host(), Port: pg.Port, Database: db, User: user, Security: pglink.Security{SSLMode: "disable"}}
}

func connect(t *testing.T, e Endpoint) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := Connect(ctx, e)
	if err == nil {
		conn.Close(ctx)
	}
	return err
}

func problemOf(t *testing.T, err error) *Problem {
	t.Helper()
	var p *Problem
	if !errors.As(err, &p) {
		t.Fatalf("err = %v (%T), want a *Problem", err, err)
	}
	return p
}

func TestCatalog(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	ctx := context.Background()
	db := pg.CreateDatabase(t, "src")
	const secret = "Very-Secret-pw-42"
	pg.Exec(t, db, `
		CREATE ROLE pwuser LOGIN PASSWORD '`+secret+`';
		CREATE ROLE plain LOGIN;
		CREATE TABLE public.with_pk (id int PRIMARY KEY, v text);
		CREATE TABLE public.no_pk (id int, v text);
		CREATE TABLE public.full_ident (id int, v text);
		ALTER TABLE public.full_ident REPLICA IDENTITY FULL;
		CREATE TABLE public.nothing (id int PRIMARY KEY);
		ALTER TABLE public.nothing REPLICA IDENTITY NOTHING;
		CREATE TABLE public.by_index (id int NOT NULL);
		CREATE UNIQUE INDEX by_index_id ON public.by_index (id);
		ALTER TABLE public.by_index REPLICA IDENTITY USING INDEX by_index_id;
		CREATE VIEW public.a_view AS SELECT 1 AS x;
		CREATE SCHEMA "Sales";
		CREATE TABLE "Sales"."Orders" (id int PRIMARY KEY);
		CREATE TABLE public.parted (id int PRIMARY KEY) PARTITION BY RANGE (id);
		GRANT SELECT ON public.with_pk TO plain;
	`)
	// Password authentication for pwuser only; everyone else stays trusted.
	hba := filepath.Join(pg.DataDir, "pg_hba.conf")
	old, err := os.ReadFile(hba)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hba, append([]byte("host all pwuser 127.0.0.1/32 scram-sha-256\n"), old...), 0o644); err != nil {
		t.Fatal(err)
	}
	pg.Exec(t, "postgres", `SELECT pg_reload_conf()`)
	// The postmaster reloads asynchronously: wait until pwuser needs its
	// password (a wrong one is refused), not for a guessed while.
	wrong := endpoint(pg, db, "pwuser")
	wrong.Password = "not-" + secret
	for deadline := time.Now().Add(30 * time.Second); connect(t, wrong) == nil; {
		if time.Now().After(deadline) {
			t.Fatal("pg_hba.conf not reloaded within 30s: pwuser still connects without its password")
		}
		time.Sleep(20 * time.Millisecond) // paces the polling
	}

	t.Run("connect", func(t *testing.T) {
		t.Parallel()
		ok := endpoint(pg, db, "pwuser")
		ok.Password = secret
		if err := connect(t, ok); err != nil {
			t.Fatalf("connect with the right password: %v", err)
		}
		wrongPW := ok
		wrongPW.Password = secret + "-wrong"
		unknownDB := endpoint(pg, "no_such_db", "postgres")
		noServer := endpoint(pg, db, "postgres")
		noServer.Port = testkit.FreePort(t)
		noServer.Password = secret // must not be echoed either
		badHost := endpoint(pg, db, "postgres")
		badHost.Host = "no-such-host.invalid"
		tests := []struct {
			name      string
			e         Endpoint
			wantField string
			wantMsg   string
		}{
			{"wrong password", wrongPW, "password", "password authentication failed"},
			{"unknown database", unknownDB, "database", "no_such_db"},
			{"nothing listening", noServer, "host", "cannot reach PostgreSQL"},
			{"unknown host", badHost, "host", "no-such-host.invalid"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				p := problemOf(t, connect(t, tt.e))
				if p.Field != tt.wantField || !strings.Contains(p.Msg, tt.wantMsg) {
					t.Fatalf("problem = %+v, want field %q and a message containing %q", p, tt.wantField, tt.wantMsg)
				}
				t.Logf("field %q: %s", p.Field, p.Msg)
				if strings.Contains(p.Msg, secret) {
					t.Fatalf("message echoes the password: %s", p.Msg)
				}
			})
		}
	})

	t.Run("source", func(t *testing.T) {
		t.Parallel()
		conn, err := Connect(ctx, endpoint(pg, db, "postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if err := CheckSource(ctx, conn); err != nil {
			t.Fatalf("superuser on a logical cluster: %v", err)
		}
		plain, err := Connect(ctx, endpoint(pg, db, "plain"))
		if err != nil {
			t.Fatal(err)
		}
		defer plain.Close(ctx)
		p := problemOf(t, CheckSource(ctx, plain))
		if p.Field != "user" || !strings.Contains(p.Msg, `ALTER ROLE "plain" REPLICATION`) {
			t.Fatalf("problem = %+v", p)
		}
	})

	t.Run("tables", func(t *testing.T) {
		t.Parallel()
		conn, err := Connect(ctx, endpoint(pg, db, "postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		plain, err := Connect(ctx, endpoint(pg, db, "plain"))
		if err != nil {
			t.Fatal(err)
		}
		defer plain.Close(ctx)
		tests := []struct {
			name   string
			tables []Table
			asUser bool
			want   string // "" means no problem
		}{
			{"primary key", []Table{{Schema: "public", Name: "with_pk"}}, false, ""},
			{"replica identity full", []Table{{Schema: "public", Name: "full_ident"}}, false, ""},
			{"replica identity index", []Table{{Schema: "public", Name: "by_index"}}, false, ""},
			{"partitioned", []Table{{Schema: "public", Name: "parted"}}, false, ""},
			{"mixed case", []Table{{Schema: "Sales", Name: "Orders"}}, false, ""},
			{"no primary key", []Table{{Schema: "public", Name: "no_pk"}}, false, `public.no_pk has no primary key: add one, or run ALTER TABLE "public"."no_pk" REPLICA IDENTITY FULL`},
			{"identity nothing", []Table{{Schema: "public", Name: "nothing"}}, false, "REPLICA IDENTITY NOTHING"},
			{"view", []Table{{Schema: "public", Name: "a_view"}}, false, "public.a_view is a view, not a table"},
			{"missing", []Table{{Schema: "public", Name: "nope"}}, false, "table public.nope does not exist"},
			{"case hint", []Table{{Schema: "sales", Name: "orders"}}, false, "did you mean Sales.Orders?"},
			{"not readable", []Table{{Schema: "public", Name: "with_pk"}, {Schema: "public", Name: "full_ident"}}, true, `cannot read public.full_ident: run GRANT SELECT ON "public"."full_ident"`},
			{"several problems", []Table{{Schema: "public", Name: "no_pk"}, {Schema: "public", Name: "nope"}}, false, "no_pk has no primary key"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := conn
				if tt.asUser {
					c = plain
				}
				err := CheckTables(ctx, c, tt.tables)
				if tt.want == "" {
					if err != nil {
						t.Fatalf("CheckTables: %v", err)
					}
					return
				}
				p := problemOf(t, err)
				if p.Field != "tables" || !strings.Contains(p.Msg, tt.want) {
					t.Fatalf("problem = %q (field %q), want it to contain %q", p.Msg, p.Field, tt.want)
				}
			})
		}
	})

	t.Run("list tables", func(t *testing.T) {
		t.Parallel()
		conn, err := Connect(ctx, endpoint(pg, db, "postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		got, err := ListTables(ctx, conn)
		if err != nil {
			t.Fatal(err)
		}
		type row struct{ ident, pk, idCols, problem string }
		byName := map[string]row{}
		for _, ti := range got {
			byName[ti.Table.String()] = row{ti.ReplicaIdentity, strings.Join(ti.PrimaryKey, ","), strings.Join(ti.IdentityColumns, ","), ti.Problem}
		}
		want := map[string]row{
			"Sales.Orders":      {"default", "id", "id", ""},
			"public.by_index":   {"index", "", "id", ""},
			"public.full_ident": {"full", "", "", ""},
			"public.no_pk":      {"default", "", "", `public.no_pk has no primary key: add one, or run ALTER TABLE "public"."no_pk" REPLICA IDENTITY FULL`},
			"public.nothing":    {"nothing", "id", "", "REPLICA IDENTITY NOTHING"},
			"public.parted":     {"default", "id", "id", ""},
			"public.with_pk":    {"default", "id", "id", ""},
		}
		if len(byName) != len(want) {
			t.Errorf("listed %d tables, want %d (views and other schemas' objects left out): %v", len(byName), len(want), byName)
		}
		for name, w := range want {
			g, ok := byName[name]
			if !ok {
				t.Errorf("%s not listed", name)
				continue
			}
			if g.ident != w.ident || g.pk != w.pk || g.idCols != w.idCols || !strings.Contains(g.problem, w.problem) || (w.problem == "") != (g.problem == "") {
				t.Errorf("%s = %+v, want %+v", name, g, w)
			}
		}
		if got[0].Table.String() != "Sales.Orders" {
			t.Errorf("first table %s, want Sales.Orders (ordered by schema, then name)", got[0].Table)
		}
	})
}

func TestWALLevelNotLogical(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	pg.Exec(t, "postgres", `ALTER SYSTEM SET wal_level = replica`)
	if err := pg.Stop("fast"); err != nil {
		t.Fatal(err)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := Connect(ctx, endpoint(pg, "postgres", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	p := problemOf(t, CheckSource(ctx, conn))
	if !strings.Contains(p.Msg, "wal_level=replica") || !strings.Contains(p.Msg, "ALTER SYSTEM SET wal_level = logical") {
		t.Fatalf("problem = %q", p.Msg)
	}
}

func TestParseTables(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		in    []string
		want  []Table
		error string
	}{
		{"ok", []string{"public.a", "Sales.Orders"}, []Table{{Schema: "public", Name: "a"}, {Schema: "Sales", Name: "Orders"}}, ""},
		{"empty", nil, nil, "tables is empty"},
		{"no schema", []string{"orders"}, nil, `tables[0]: "orders" is not a schema-qualified table name`},
		{"empty part", []string{"public."}, nil, "tables[0]"},
		{"two dots", []string{"public.a", "a.b.c"}, nil, "tables[1]: \"a.b.c\" has more than one dot"},
		{"spaces", []string{" public.a"}, nil, "spaces"},
		{"twice", []string{"public.a", "public.a"}, nil, "lists public.a twice"},
		{"same name two schemas", []string{"public.events", "audit.events"}, nil, "public.events and audit.events have the same table name in different schemas"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTables(tt.in)
			if tt.error != "" {
				p := problemOf(t, err)
				if p.Field != "tables" || !strings.Contains(p.Msg, tt.error) {
					t.Fatalf("problem = %+v, want %q", p, tt.error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestConnConfigKeepsPasswordOutOfTheString(t *testing.T) {
	t.Parallel()
	e := Endpoint{Host: "h o'st", Port: 5432, Database: `d\b`, User: "u", Password: "p w'd", Security: pglink.Security{SSLMode: "disable"}}
	cfg, err := e.ConnConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "h o'st" || cfg.Database != `d\b` || cfg.Password != "p w'd" || cfg.TLSConfig != nil {
		t.Fatalf("config = host %q db %q password set %v tls %v", cfg.Host, cfg.Database, cfg.Password != "", cfg.TLSConfig)
	}
	if strings.Contains(cfg.ConnString(), "p w'd") {
		t.Fatal("the connection string holds the password")
	}
	bad := Endpoint{Host: "h", Port: 5432, Database: "d", User: "u", Password: "topsecret", Security: pglink.Security{SSLMode: "bogus"}}
	ctx := context.Background()
	p := problemOf(t, func() error { _, err := Connect(ctx, bad); return err }())
	if strings.Contains(p.Msg, "topsecret") {
		t.Fatalf("message echoes the password: %s", p.Msg)
	}
}
