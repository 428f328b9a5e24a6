package configstore

import (
	"context"
	"errors"
	"testing"

	"github.com/rosettacdc/rosetta/pkg/secrets"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestSecretsAtRest: sealed values are bound to their row (one moved to
// another row does not open), and a rotation re-seals every value under the
// new key so that the old key can be dropped; a second run changes nothing.
func TestSecretsAtRest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := testkit.StartPostgres(t)
	s, db := openStore(t, pg)
	conn := pg.Connect(t, db)

	a, err := s.CreateSource(ctx, SourceInput{Name: "a", Host: "h", Port: 5432, Database: "d", User: "u", Password: ptr("pw-a"), SSLKey: ptr("key-a")})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.CreateSource(ctx, SourceInput{Name: "b", Host: "h", Port: 5432, Database: "d", User: "u", Password: ptr("pw-b")})
	if err != nil {
		t.Fatal(err)
	}
	dst, err := s.CreateDestination(ctx, DestinationInput{Name: "w", Type: "postgres",
		Config: map[string]any{"host": "h", "password": "pw-d"}})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("moved value does not open", func(t *testing.T) {
		// An attacker with write access to the config DB copies a's
		// sealed password onto b, hoping b's connection sends it to b's
		// host.
		if _, err := conn.Exec(ctx, `UPDATE sources SET password_enc = (SELECT password_enc FROM sources WHERE id = $1) WHERE id = $2`, a.ID, b.ID); err != nil {
			t.Fatal(err)
		}
		_, err := s.SourceWithSecrets(ctx, b.ID)
		if !errors.Is(err, secrets.ErrWrongKey) {
			t.Fatalf("source b with a's sealed password: err = %v, want ErrWrongKey", err)
		}
		if _, err := s.UpdateSource(ctx, b.ID, SourceInput{Name: "b", Host: "h", Port: 5432, Database: "d", User: "u", Password: ptr("pw-b")}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("rotate", func(t *testing.T) {
		const newKey = "configstore-next-key-9876543210"
		rotating, err := secrets.NewBox(newKey, testKey)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := Open(ctx, pg.DSN(db), rotating)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		got, err := rs.RotateSecrets(ctx, nil)
		if err != nil {
			t.Fatalf("rotate: %v", err)
		}
		if len(got) != 3 || got[0].Resealed != 2 || got[1].Resealed != 1 || got[2].Resealed != 1 {
			t.Fatalf("first rotation = %+v, want 2 source passwords, 1 source key and 1 destination re-sealed", got)
		}
		again, err := rs.RotateSecrets(ctx, nil)
		if err != nil || again[0].Resealed != 0 || again[0].Skipped != 2 || again[1].Resealed != 0 || again[2].Resealed != 0 {
			t.Fatalf("second rotation = %+v, %v: want nothing re-sealed", again, err)
		}

		// Only the new key now: everything still opens.
		only, _ := secrets.NewBox(newKey)
		ns, err := Open(ctx, pg.DSN(db), only)
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		for id, want := range map[int64]string{a.ID: "pw-a", b.ID: "pw-b"} {
			src, err := ns.SourceWithSecrets(ctx, id)
			if err != nil || src.Password != want {
				t.Fatalf("source %d after rotation: %q, %v", id, src.Password, err)
			}
		}
		if src, err := ns.SourceWithSecrets(ctx, a.ID); err != nil || src.SSLKey != "key-a" {
			t.Fatalf("source key after rotation: %q, %v", src.SSLKey, err)
		}
		d, err := ns.DestinationWithSecrets(ctx, dst.ID)
		if err != nil || d.Secrets["password"] != "pw-d" {
			t.Fatalf("destination after rotation: %v, %v", d.Secrets, err)
		}
		// And the old key alone no longer opens anything.
		old, _ := secrets.NewBox(testKey)
		olds, err := Open(ctx, pg.DSN(db), old)
		if err != nil {
			t.Fatal(err)
		}
		defer olds.Close()
		if _, err := olds.SourceWithSecrets(ctx, a.ID); !errors.Is(err, secrets.ErrUnknownKey) {
			t.Fatalf("old key after rotation: err = %v, want ErrUnknownKey", err)
		}
	})
}
