package configstore

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/rosettacdc/rosetta/migrations"
	"github.com/rosettacdc/rosetta/pkg/secrets"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

const testKey = "configstore-test-key-0123456789"

func openStore(t *testing.T, pg *testkit.Postgres) (*Store, string) {
	t.Helper()
	ctx := context.Background()
	db := pg.CreateDatabase(t, "cfg")
	box, err := secrets.NewBox(testKey)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, pg.DSN(db), box)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(s.Close)
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return s, db
}

func ptr[T any](v T) *T { return &v }

// TestStore shares one PostgreSQL cluster; every subtest has its own
// config database.
func TestStore(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)

	t.Run("migrations apply once, concurrently", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		db := pg.CreateDatabase(t, "mig")
		box, _ := secrets.NewBox(testKey)
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := Open(ctx, pg.DSN(db), box)
				if err != nil {
					errs[i] = err
					return
				}
				defer s.Close()
				errs[i] = s.Migrate(ctx)
				if errs[i] == nil {
					errs[i] = s.Migrate(ctx) // again: a no-op
				}
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("migrate: %v", err)
			}
		}
		ms, err := LoadMigrations(migrations.FS)
		if err != nil {
			t.Fatal(err)
		}
		conn := pg.Connect(t, db)
		var n, inst int
		if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM schema_migrations), (SELECT count(*) FROM installation)`).Scan(&n, &inst); err != nil {
			t.Fatal(err)
		}
		if n != len(ms) || inst != 1 {
			t.Fatalf("schema_migrations rows = %d (want %d), installation rows = %d (want 1)", n, len(ms), inst)
		}
	})

	t.Run("edited migration is refused", func(t *testing.T) {
		t.Parallel()
		s, _ := openStore(t, pg)
		ms, _ := LoadMigrations(migrations.FS)
		ms[0].Checksum = "edited"
		err := s.migrate(context.Background(), ms)
		if err == nil || !strings.Contains(err.Error(), "never edit an applied migration") {
			t.Fatalf("migrate with an edited file: err = %v", err)
		}
	})

	t.Run("installation ids differ per config database", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		a, _ := openStore(t, pg)
		b, _ := openStore(t, pg)
		ia, err := a.InstallationID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ib, _ := b.InstallationID(ctx)
		if ia == ib {
			t.Fatalf("two config databases share installation id %s", ia)
		}
		sa, err := a.CreateSource(ctx, SourceInput{Name: "s", Host: "h", Port: 5432, Database: "d", User: "u"})
		if err != nil {
			t.Fatal(err)
		}
		sb, _ := b.CreateSource(ctx, SourceInput{Name: "s", Host: "h", Port: 5432, Database: "d", User: "u"})
		if sa.Slot == sb.Slot {
			t.Fatalf("two installations derived the same slot %s", sa.Slot)
		}
		valid := regexp.MustCompile(`^[a-z0-9_]{1,63}$`)
		for _, n := range []string{sa.Slot, sa.Publication, sb.Slot} {
			if !valid.MatchString(n) {
				t.Fatalf("derived name %q is not a valid slot name", n)
			}
		}
		if sa.Slot != DerivedName(ia, sa.ID) || sa.Publication != sa.Slot {
			t.Fatalf("slot %q publication %q, want %q", sa.Slot, sa.Publication, DerivedName(ia, sa.ID))
		}
	})

	t.Run("sources", func(t *testing.T) {
		t.Parallel()
		testSources(t, pg)
	})
	t.Run("destinations", func(t *testing.T) {
		t.Parallel()
		testDestinations(t, pg)
	})
	t.Run("pipelines and states", func(t *testing.T) {
		t.Parallel()
		testPipelines(t, pg)
	})
}

func testSources(t *testing.T, pg *testkit.Postgres) {
	ctx := context.Background()
	s, db := openStore(t, pg)
	const pw = "s3cret-Pa55word"
	src, err := s.CreateSource(ctx, SourceInput{Name: "orders", Host: "db1", Port: 5432, Database: "shop", User: "rep", Password: ptr(pw), Slot: "my_slot"})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if src.Password != "" || !src.PasswordSet || src.Slot != "my_slot" || src.SSLMode != "prefer" {
		t.Fatalf("created source = %+v", src)
	}

	// The column holds ciphertext, not the password.
	var raw []byte
	if err := pg.Connect(t, db).QueryRow(ctx, `SELECT password_enc FROM sources WHERE id = $1`, src.ID).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if len(raw) == 0 || bytes.Contains(raw, []byte(pw)) {
		t.Fatalf("password_enc = %q: want ciphertext", raw)
	}

	got, err := s.GetSource(ctx, src.ID)
	if err != nil || got.Password != "" || !got.PasswordSet {
		t.Fatalf("get = %+v, %v", got, err)
	}
	withPW, err := s.SourceWithSecrets(ctx, src.ID)
	if err != nil || withPW.Password != pw {
		t.Fatalf("with secrets: password %q, %v", withPW.Password, err)
	}

	// Conflicts name the field.
	_, err = s.CreateSource(ctx, SourceInput{Name: "orders", Host: "db2", Port: 5432, Database: "x", User: "u"})
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Field != "name" || !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate name: err = %v", err)
	}
	_, err = s.CreateSource(ctx, SourceInput{Name: "other", Host: "db1", Port: 5432, Database: "x", User: "u", Slot: "my_slot"})
	if !errors.As(err, &ce) || ce.Field != "slot" {
		t.Fatalf("duplicate slot: err = %v", err)
	}

	// Update without a password keeps it; "" removes it.
	up, err := s.UpdateSource(ctx, src.ID, SourceInput{Name: "orders2", Host: "db1", Port: 5433, Database: "shop", User: "rep"})
	if err != nil || up.Name != "orders2" || up.Port != 5433 || up.Slot != "my_slot" || !up.PasswordSet {
		t.Fatalf("update = %+v, %v", up, err)
	}
	if withPW, _ = s.SourceWithSecrets(ctx, src.ID); withPW.Password != pw {
		t.Fatalf("update without password lost it: %q", withPW.Password)
	}
	up, err = s.UpdateSource(ctx, src.ID, SourceInput{Name: "orders2", Host: "db1", Port: 5433, Database: "shop", User: "rep", Password: ptr("")})
	if err != nil || up.PasswordSet {
		t.Fatalf("clear password: %+v, %v", up, err)
	}
	if _, err := s.UpdateSource(ctx, 999999, SourceInput{Name: "x", Host: "h", Port: 1, Database: "d", User: "u"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update unknown: err = %v", err)
	}

	// Pagination.
	for i := 0; i < 4; i++ {
		if _, err := s.CreateSource(ctx, SourceInput{Name: "p" + string(rune('a'+i)), Host: "h", Port: 5432, Database: "d", User: "u"}); err != nil {
			t.Fatal(err)
		}
	}
	page, total, err := s.ListSources(ctx, Page{Limit: 2, Offset: 1})
	if err != nil || total != 5 || len(page) != 2 || page[0].Name != "pa" {
		t.Fatalf("list = %d items %v total %d, %v", len(page), page, total, err)
	}
	page, total, _ = s.ListSources(ctx, Page{Limit: 2, Offset: 10})
	if total != 5 || len(page) != 0 {
		t.Fatalf("list past the end = %d items total %d", len(page), total)
	}
	all, err := s.ListAllSources(ctx)
	if err != nil || len(all) != 5 {
		t.Fatalf("list all = %d, %v", len(all), err)
	}

	if err := s.DeleteSource(ctx, src.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := s.GetSource(ctx, src.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	if err := s.DeleteSource(ctx, src.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
}

func testDestinations(t *testing.T, pg *testkit.Postgres) {
	ctx := context.Background()
	s, db := openStore(t, pg)
	const pw, key = "dest-Pa55word", "-----BEGIN PRIVATE KEY-----abc"
	d, err := s.CreateDestination(ctx, DestinationInput{Name: "wh", Type: "snowflake", Config: map[string]any{
		"account": "acme", "user": "u", "password": pw, "private_key": key,
	}})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, ok := d.Config["password"]; ok || d.Secrets != nil || strings.Join(d.SecretKeys, ",") != "password,private_key" {
		t.Fatalf("created = %+v", d)
	}
	var rawCfg string
	var rawSecrets []byte
	if err := pg.Connect(t, db).QueryRow(ctx, `SELECT config::text, secrets FROM destinations WHERE id = $1`, d.ID).Scan(&rawCfg, &rawSecrets); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(rawCfg, pw) || bytes.Contains(rawSecrets, []byte(pw)) || bytes.Contains(rawSecrets, []byte("BEGIN")) {
		t.Fatalf("secret stored in clear: config %s secrets %q", rawCfg, rawSecrets)
	}

	// Update: omitted password kept, private_key cleared, passphrase added.
	_, err = s.UpdateDestination(ctx, d.ID, DestinationInput{Name: "wh", Type: "snowflake", Config: map[string]any{
		"account": "acme2", "user": "u", "private_key": "", "private_key_passphrase": "pp",
	}})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	full, err := s.DestinationWithSecrets(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"password": pw, "private_key_passphrase": "pp"}
	if len(full.Secrets) != len(want) || full.Secrets["password"] != pw || full.Secrets["private_key_passphrase"] != "pp" {
		t.Fatalf("secrets after update = %v, want %v", full.Secrets, want)
	}
	if full.Config["account"] != "acme2" {
		t.Fatalf("config after update = %v", full.Config)
	}
	cfg, _ := full.ConfigWithSecrets()
	if !strings.Contains(string(cfg), pw) {
		t.Fatalf("ConfigWithSecrets = %s", cfg)
	}

	if _, err := s.CreateDestination(ctx, DestinationInput{Name: "wh", Type: "duckdb", Config: map[string]any{"path": "x"}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate name: %v", err)
	}
	if _, err := s.CreateDestination(ctx, DestinationInput{Name: "bad", Type: "duckdb", Config: map[string]any{"password": 5}}); err == nil {
		t.Fatal("non-string secret accepted")
	}
	if _, err := s.UpdateDestination(ctx, 424242, DestinationInput{Name: "n", Type: "duckdb", Config: map[string]any{}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update unknown: %v", err)
	}
	all, err := s.ListAllDestinations(ctx)
	if err != nil || len(all) != 1 || all[0].Secrets["password"] != pw {
		t.Fatalf("list all = %+v, %v", all, err)
	}
	page, total, err := s.ListDestinations(ctx, Page{})
	if err != nil || total != 1 || page[0].Secrets != nil {
		t.Fatalf("list = %+v %d, %v", page, total, err)
	}
}

func testPipelines(t *testing.T, pg *testkit.Postgres) {
	ctx := context.Background()
	s, _ := openStore(t, pg)
	src, err := s.CreateSource(ctx, SourceInput{Name: "src", Host: "h", Port: 5432, Database: "d", User: "u"})
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := s.CreateDestination(ctx, DestinationInput{Name: "d1", Type: "duckdb", Config: map[string]any{"path": "a"}})
	d2, _ := s.CreateDestination(ctx, DestinationInput{Name: "d2", Type: "duckdb", Config: map[string]any{"path": "b"}})

	p, err := s.CreatePipeline(ctx, PipelineInput{Name: "p", SourceID: src.ID, DestinationIDs: []int64{d2.ID, d1.ID}, Tables: []string{"public.a", "s.b"}})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if p.Status != StatusPause || len(p.DestinationIDs) != 2 || p.DestinationIDs[0] != d1.ID || strings.Join(p.Tables, ",") != "public.a,s.b" {
		t.Fatalf("created = %+v", p)
	}

	var re *ReferenceError
	_, err = s.CreatePipeline(ctx, PipelineInput{Name: "q", SourceID: 987654, DestinationIDs: []int64{d1.ID}, Tables: []string{"public.a"}})
	if !errors.As(err, &re) || re.Field != "source_id" {
		t.Fatalf("unknown source: %v", err)
	}
	_, err = s.CreatePipeline(ctx, PipelineInput{Name: "q", SourceID: src.ID, DestinationIDs: []int64{987654}, Tables: []string{"public.a"}})
	if !errors.As(err, &re) || re.Field != "destination_ids" {
		t.Fatalf("unknown destination: %v", err)
	}
	if _, err = s.CreatePipeline(ctx, PipelineInput{Name: "p", SourceID: src.ID, DestinationIDs: []int64{d1.ID}, Tables: []string{"public.a"}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate name: %v", err)
	}

	// States.
	applied := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := s.SetDestinationState(ctx, DestinationState{PipelineID: p.ID, DestinationID: d1.ID, Health: HealthHealthy, LastAppliedAt: applied}); err != nil {
		t.Fatalf("set destination state: %v", err)
	}
	if err := s.SetDestinationState(ctx, DestinationState{PipelineID: p.ID, DestinationID: d1.ID, Health: HealthError, LastError: "boom"}); err != nil {
		t.Fatal(err)
	}
	sts, err := s.DestinationStates(ctx, p.ID)
	if err != nil || len(sts) != 2 {
		t.Fatalf("states = %+v, %v", sts, err)
	}
	if sts[0].Health != HealthError || sts[0].LastError != "boom" || !sts[0].LastAppliedAt.Equal(applied) || sts[1].Health != HealthUnknown {
		t.Fatalf("states = %+v", sts)
	}
	if err := s.SetSourceState(ctx, SourceState{SourceID: src.ID, State: "RUNNING", ConfirmedLSN: "0/16B3748"}); err != nil {
		t.Fatalf("set source state: %v", err)
	}
	if err := s.SetSourceState(ctx, SourceState{SourceID: 987654, State: "RUNNING"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("state of unknown source: %v", err)
	}
	ss, err := s.SourceStateOf(ctx, src.ID)
	if err != nil || ss.State != "RUNNING" || ss.ConfirmedLSN != "0/16B3748" {
		t.Fatalf("source state = %+v, %v", ss, err)
	}

	// In use: deletes refused naming the pipeline.
	if err := s.DeleteSource(ctx, src.ID); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), `"p"`) {
		t.Fatalf("delete used source: %v", err)
	}
	if err := s.DeleteDestination(ctx, d2.ID); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), `"p"`) {
		t.Fatalf("delete used destination: %v", err)
	}

	// Update drops d2 (and its state), keeps d1's state and the status.
	if _, err := s.SetPipelineStatus(ctx, p.ID, StatusStart); err != nil {
		t.Fatal(err)
	}
	up, err := s.UpdatePipeline(ctx, p.ID, PipelineInput{Name: "p", SourceID: src.ID, DestinationIDs: []int64{d1.ID}, Tables: []string{"public.c"}})
	if err != nil || up.Status != StatusStart || len(up.DestinationIDs) != 1 || up.Tables[0] != "public.c" {
		t.Fatalf("update = %+v, %v", up, err)
	}
	sts, _ = s.DestinationStates(ctx, p.ID)
	if len(sts) != 1 || sts[0].LastError != "boom" {
		t.Fatalf("states after update = %+v", sts)
	}
	// A late report for the removed destination does not add it back.
	if err := s.SetDestinationState(ctx, DestinationState{PipelineID: p.ID, DestinationID: d2.ID, Health: HealthHealthy}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("state of removed destination: %v", err)
	}
	if err := s.DeleteDestination(ctx, d2.ID); err != nil {
		t.Fatalf("delete unused destination: %v", err)
	}
	all, err := s.ListAllPipelines(ctx)
	if err != nil || len(all) != 1 || all[0].DestinationIDs[0] != d1.ID {
		t.Fatalf("list all = %+v, %v", all, err)
	}
	if err := s.DeletePipeline(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePipeline(ctx, p.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if err := s.DeleteSource(ctx, src.ID); err != nil {
		t.Fatalf("delete source after its pipeline: %v", err)
	}
}

func TestLoadMigrations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		fs      fstest.MapFS
		want    []int
		wantErr string
	}{
		{"ordered", fstest.MapFS{"0002_b.sql": {}, "0001_a.sql": {}, "0010_c.sql": {}}, []int{1, 2, 10}, ""},
		{"bad name", fstest.MapFS{"1_a.sql": {}}, nil, "NNNN_lower_case.sql"},
		{"duplicate version", fstest.MapFS{"0001_a.sql": {}, "0001_b.sql": {}}, nil, "same version"},
		{"version zero", fstest.MapFS{"0000_a.sql": {}}, nil, "start at 0001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := LoadMigrations(tt.fs)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, m := range ms {
				got = append(got, m.Version)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("versions = %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("versions = %v, want %v", got, tt.want)
				}
			}
		})
	}
	// The embedded files load.
	if ms, err := LoadMigrations(migrations.FS); err != nil || len(ms) == 0 {
		t.Fatalf("embedded migrations: %d, %v", len(ms), err)
	}
}
