package natsx

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkPublishAtRest is what JetStream's encryption at rest costs a
// publisher: ~500-byte changes into a file-backed stream of the embedded
// server (fsync every second, as `rosetta dev`), acknowledged, with
// encryption off, ChaCha20-Poly1305 and AES-GCM. docs/secrets.md gives the
// command; figures depend on the machine (AES-GCM needs AES instructions).
func BenchmarkPublishAtRest(b *testing.B) {
	for _, bc := range []struct {
		name string
		ar   AtRest
	}{
		{"plaintext", AtRest{}},
		{"chacha", AtRest{Key: "bench-key-0123456789abcdef", Cipher: server.ChaCha}},
		{"aes", AtRest{Key: "bench-key-0123456789abcdef", Cipher: server.AES}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e, err := StartEmbedded(EmbeddedConfig{Dir: b.TempDir(), Port: -1, SyncInterval: time.Second, AtRest: bc.ar}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer e.Shutdown()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			nc, js, err := Connect(ctx, e.ClientURL(), b.Name(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH", Subjects: []string{"bench.>"}, Storage: jetstream.FileStorage}); err != nil {
				b.Fatal(err)
			}
			// Random bytes: they do not compress, like encrypted blocks.
			row := make([]byte, 500)
			if _, err := rand.Read(row); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(row)))
			b.ResetTimer()
			// Up to 256 publishes in flight, as capture keeps a window.
			for i := 0; i < b.N; i++ {
				if _, err := js.PublishAsync("bench.row", row); err != nil {
					b.Fatal(err)
				}
				if js.PublishAsyncPending() >= 256 {
					select {
					case <-js.PublishAsyncComplete():
					case <-ctx.Done():
						b.Fatal(ctx.Err())
					}
				}
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				b.Fatal(ctx.Err())
			}
			b.StopTimer()
			s, err := js.Stream(ctx, "BENCH")
			if err != nil {
				b.Fatal(err)
			}
			if got := s.CachedInfo().State.Msgs; got != uint64(b.N) {
				b.Fatalf("stream holds %d messages, published %d", got, b.N)
			}
		})
	}
}
