package faults

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// deployedNATS is deploy/nats/ copied into a directory, with the paths of
// the certificates and of the store replaced by the test's.
type deployedNATS struct {
	dir  string
	conf string
}

// copyDeployedNATS copies deploy/nats/*.conf into a new directory, replacing
// each key of paths with its value; a key the files do not hold fails the
// test, so the copy cannot drift from what is deployed. noTLS replaces
// tls.conf and cluster-tls.conf with the compose file's empty stand-in.
func copyDeployedNATS(t *testing.T, paths map[string]string, noTLS bool) deployedNATS {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join("..", "deploy", "nats")
	files, err := filepath.Glob(filepath.Join(src, "*.conf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("deploy/nats/*.conf: %v", err)
	}
	var all strings.Builder
	for _, f := range files {
		name := filepath.Base(f)
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(b)
		if noTLS && (name == "tls.conf" || name == "cluster-tls.conf") {
			if b, err = os.ReadFile(filepath.Join("..", "deploy", "compose", "nats-no-tls.conf")); err != nil {
				t.Fatal(err)
			}
		}
		body := string(b)
		for from, to := range paths {
			body = strings.ReplaceAll(body, from, to)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for from := range paths {
		if !strings.Contains(all.String(), from) {
			t.Fatalf("deploy/nats/ no longer holds %q: update this test", from)
		}
	}
	return deployedNATS{dir: dir, conf: filepath.Join(dir, "nats-server.conf")}
}

// TestDeployedNATSConfig starts a three-node cluster from deploy/nats/ as
// deployed (only addresses and file paths changed): clients must use TLS
// with a client certificate and their role's user, routes use TLS checked
// against the CA, and JetStream encrypts its files under $JS_KEY: a row
// published with a unique marker is in no file of any node. Without
// JS_KEY the configuration does not load, and the compose file's stand-in
// for the TLS files loads without TLS.
func TestDeployedNATSConfig(t *testing.T) {
	ca := testkit.NewCA(t)
	srvCert := ca.Issue(t, "nats", "127.0.0.1", "localhost")
	client := ca.Issue(t, "rosetta")
	paths := func(store string) map[string]string {
		return map[string]string{
			"/etc/nats/tls/tls.crt": srvCert.CertFile,
			"/etc/nats/tls/tls.key": srvCert.KeyFile,
			"/etc/nats/tls/ca.crt":  ca.CertFile,
			"/data/jetstream":       store,
		}
	}
	for _, role := range roles {
		t.Setenv("NATS_"+strings.ToUpper(role)+"_PASSWORD", role+"-password-0123456789")
	}

	// What loads: the deployed files, the compose variant, and no key.
	for _, tc := range []struct {
		name    string
		noTLS   bool
		jsKey   string
		wantErr string
	}{
		{name: "deployed", jsKey: "deploy-test-key-0123456789abcdef"},
		{name: "compose without certificates", noTLS: true, jsKey: "deploy-test-key-0123456789abcdef"},
		{name: "no JS_KEY", wantErr: "JS_KEY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("NATS_SERVER_NAME", "nats-1")
			if tc.jsKey != "" {
				t.Setenv("JS_KEY", tc.jsKey)
			} else {
				// An empty value would still resolve; unset it.
				t.Setenv("JS_KEY", "")
				os.Unsetenv("JS_KEY")
			}
			d := copyDeployedNATS(t, paths(filepath.Join(t.TempDir(), "js")), tc.noTLS)
			opts, err := server.ProcessConfigFile(d.conf)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("load without %s: %v, want an error naming it", tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("load deploy/nats/: %v", err)
			}
			if opts.JetStreamKey != tc.jsKey || opts.JetStreamCipher != server.ChaCha || !opts.SyncAlways {
				t.Errorf("jetstream key set %v, cipher %v, sync always %v; want $JS_KEY, chacha, always",
					opts.JetStreamKey == tc.jsKey, opts.JetStreamCipher, opts.SyncAlways)
			}
			for what, cfg := range map[string]*tls.Config{"clients": opts.TLSConfig, "routes": opts.Cluster.TLSConfig} {
				switch {
				case tc.noTLS && cfg != nil:
					t.Errorf("TLS for %s in the compose variant", what)
				case !tc.noTLS && (cfg == nil || cfg.ClientAuth != tls.RequireAndVerifyClientCert):
					t.Errorf("TLS for %s: %v, want certificates verified on both sides", what, cfg)
				}
			}
		})
	}

	// A three-node cluster from the deployed files.
	t.Setenv("JS_KEY", "deploy-test-key-0123456789abcdef")
	const nodes = 3
	clientPorts, routePorts := make([]int, nodes), make([]int, nodes)
	var routes []string
	for i := range nodes {
		clientPorts[i], routePorts[i] = testkit.FreePort(t), testkit.FreePort(t)
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", routePorts[i]))
	}
	var stores []string
	var servers []*server.Server
	for i := range nodes {
		t.Setenv("NATS_SERVER_NAME", fmt.Sprintf("nats-%d", i+1))
		store := filepath.Join(t.TempDir(), "js")
		stores = append(stores, store)
		opts, err := server.ProcessConfigFile(copyDeployedNATS(t, paths(store), false).conf)
		if err != nil {
			t.Fatalf("load deploy/nats/: %v", err)
		}
		// Addresses only: the deployed ones are standard ports on every
		// interface and host names of a Docker network.
		opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", clientPorts[i], 0
		opts.Cluster.Host, opts.Cluster.Port = "127.0.0.1", routePorts[i]
		opts.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		opts.NoSigs = true
		srv, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}

		go srv.Start()
		servers = append(servers, srv)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		for _, s := range servers {
			s.Shutdown()
			s.WaitForShutdown()
		}
	}
	t.Cleanup(stop)
	for _, s := range servers {
		if !s.ReadyForConnections(30 * time.Second) {
			t.Fatal("a server of deploy/nats/ is not ready")
		}
	}
	url := fmt.Sprintf("nats://127.0.0.1:%d", clientPorts[0])

	// Without a client certificate, or without TLS, a client is refused.
	for name, opts := range map[string][]nats.Option{
		"no client certificate": {nats.UserInfo("capture", "capture-password-0123456789"), nats.RootCAs(ca.CertFile)},
		"plaintext":             {nats.UserInfo("capture", "capture-password-0123456789")},
	} {
		if nc, err := nats.Connect(url, opts...); err == nil {
			nc.Close()
			t.Errorf("a client with %s connected", name)
		}
	}

	// As capture connects: its role's inbox prefix is the only one it may
	// subscribe to (auth.conf).
	nc, err := nats.Connect(url, nats.UserInfo("capture", "capture-password-0123456789"),
		nats.RootCAs(ca.CertFile), nats.ClientCert(client.CertFile, client.KeyFile), nats.CustomInboxPrefix("_INBOX_rosetta_capture"))
	if err != nil {
		t.Fatalf("connect as capture: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const source = 97
	// The cluster elects its meta leader over the TLS routes; until then
	// stream creation fails.
	cfg := jetstream.StreamConfig{Name: contracts.StreamName(source), Subjects: []string{contracts.ChangeSubject(source, "public", "t", 0)},
		Storage: jetstream.FileStorage, Replicas: nodes}
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 5*time.Second)
		_, err = js.CreateStream(attempt, cfg)
		cancelAttempt()
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			var nr []int
			for _, s := range servers {
				nr = append(nr, s.NumRoutes())
			}
			t.Fatalf("create a stream of %d replicas: %v (routes per server %v)", nodes, err, nr)
		case <-time.After(500 * time.Millisecond):
		}
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	marker := []byte("deployed-row-" + hex.EncodeToString(b))
	if _, err := js.Publish(ctx, cfg.Subjects[0], append([]byte(`{"after":{"note":"`), append(marker, `"}}`...)...)); err != nil {
		t.Fatalf("publish as capture: %v", err)
	}
	// Every replica stores the row before the servers stop.
	for {
		info, err := js.Stream(ctx, cfg.Name)
		if err == nil {
			ci := info.CachedInfo()
			current := ci.State.Msgs == 1 && ci.Cluster != nil && len(ci.Cluster.Replicas) == nodes-1
			for _, r := range ci.Cluster.Replicas {
				current = current && r.Current && r.Lag == 0
			}
			if current {
				break
			}
		}
		select {
		case <-ctx.Done():
			t.Fatal("the row did not reach every replica")
		case <-time.After(200 * time.Millisecond):
		}
	}
	nc.Close()
	stop()
	for i, store := range stores {
		var files int
		err := filepath.WalkDir(store, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			files++
			body, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if bytes.Contains(body, marker) {
				t.Errorf("node %d holds the row in clear in %s", i+1, path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if files == 0 {
			t.Errorf("node %d stored no file", i+1)
		}
	}
}
