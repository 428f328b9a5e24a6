package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// composeFile is the part of the compose file this test reads.
type composeFile struct {
	Services map[string]struct {
		Image       string            `json:"image"`
		Command     []string          `json:"command"`
		Environment map[string]string `json:"environment"`
		Build       *struct {
			Context    string `json:"context"`
			Dockerfile string `json:"dockerfile"`
		} `json:"build"`
	} `json:"services"`
}

// TestComposeFile checks the whole stack is there (three NATS nodes, the
// two databases, Redis, the API, two captures, one sink service per
// destination, Prometheus and Grafana), that it runs the image the
// Dockerfile builds with variables the binary reads, and NATS at the
// version Rosetta is built with.
func TestComposeFile(t *testing.T) {
	b := readBinary(t)
	body, err := os.ReadFile(filepath.Join("compose", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(body, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	count := map[string]int{}
	sinkDests := map[string]string{}
	for name, s := range c.Services {
		for k := range s.Environment {
			if strings.HasPrefix(k, "ROSETTA_") && !b.env[k] {
				t.Errorf("service %s sets %s: pkg/settings has no such variable", name, k)
			}
		}
		switch {
		case strings.HasPrefix(s.Image, "nats:"):
			count["nats"]++
			if want := "nats:" + b.natsVersion; !strings.HasPrefix(s.Image, want) {
				t.Errorf("service %s runs %s; Rosetta is built and tested against nats-server %s", name, s.Image, b.natsVersion)
			}
		case strings.HasPrefix(s.Image, "rosetta:"):
			if s.Build == nil || filepath.Clean(filepath.Join("compose", s.Build.Context, s.Build.Dockerfile)) != filepath.Join(root, "deploy", "Dockerfile") {
				t.Errorf("service %s does not build deploy/Dockerfile from the repository's root", name)
			}
			if len(s.Command) == 0 || !b.commands[s.Command[0]] {
				t.Errorf("service %s runs %v, not a rosetta command", name, s.Command)
				continue
			}
			count[s.Command[0]]++
			if s.Command[0] == "sink" {
				ids := s.Environment["ROSETTA_SINK_DESTINATIONS"]
				if ids == "" {
					t.Errorf("sink service %s runs every destination: give it ROSETTA_SINK_DESTINATIONS", name)
				}
				if other, dup := sinkDests[ids]; dup {
					t.Errorf("sink services %s and %s run the same destinations %s", name, other, ids)
				}
				sinkDests[ids] = name
			}
			if s.Environment["ROSETTA_STREAM_REPLICAS"] != "3" {
				t.Errorf("service %s: ROSETTA_STREAM_REPLICAS=%q, want 3 on the three-node cluster", name, s.Environment["ROSETTA_STREAM_REPLICAS"])
			}
		case strings.HasPrefix(s.Image, "postgres:"):
			count["postgres"]++
		case strings.HasPrefix(s.Image, "redis:"):
			count["redis"]++
		case strings.HasPrefix(s.Image, "prom/prometheus:"):
			count["prometheus"]++
		case strings.HasPrefix(s.Image, "grafana/grafana:"):
			count["grafana"]++
		}
	}
	for what, want := range map[string]int{"nats": 3, "postgres": 2, "redis": 1, "api": 1, "capture": 2, "prometheus": 1, "grafana": 1} {
		if count[what] != want {
			t.Errorf("%d %s services, want %d", count[what], what, want)
		}
	}
	if count["sink"] < 2 {
		t.Errorf("%d sink services, want one per destination (at least two)", count["sink"])
	}
}

// TestNATSHelmValues checks what can be checked of the Helm values without
// the chart: a three-node JetStream cluster at Rosetta's nats-server
// version that fsyncs every write, matching the replicas the manifests ask
// for. Whether the chart reads these keys is NOT checked (deploy/README.md).
func TestNATSHelmValues(t *testing.T) {
	b := readBinary(t)
	body, err := os.ReadFile(filepath.Join("kubernetes", "nats-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Container struct {
			Image struct {
				Tag string `json:"tag"`
			} `json:"image"`
			Env map[string]struct {
				ValueFrom *struct {
					SecretKeyRef *struct {
						Name string `json:"name"`
					} `json:"secretKeyRef"`
				} `json:"valueFrom"`
			} `json:"env"`
		} `json:"container"`
		Config struct {
			NATS struct {
				TLS chartTLS `json:"tls"`
			} `json:"nats"`
			Cluster struct {
				Enabled  bool     `json:"enabled"`
				Replicas int      `json:"replicas"`
				TLS      chartTLS `json:"tls"`
			} `json:"cluster"`
			JetStream struct {
				Enabled bool `json:"enabled"`
			} `json:"jetstream"`
			Merge struct {
				JetStream struct {
					SyncInterval string `json:"sync_interval"`
					Cipher       string `json:"cipher"`
					Key          string `json:"key"`
				} `json:"jetstream"`
			} `json:"merge"`
		} `json:"config"`
	}
	if err := yaml.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v.Container.Image.Tag, b.natsVersion) {
		t.Errorf("NATS image tag %q, want nats-server %s (go.mod)", v.Container.Image.Tag, b.natsVersion)
	}
	if !v.Config.Cluster.Enabled || v.Config.Cluster.Replicas != 3 || !v.Config.JetStream.Enabled {
		t.Errorf("want a three-node JetStream cluster, got %+v", v.Config)
	}
	if v.Config.Merge.JetStream.SyncInterval != "always" {
		t.Errorf("sync_interval %q, want always (deploy/README.md says why)", v.Config.Merge.JetStream.SyncInterval)
	}
	// Encryption at rest under a key from a Secret, through the
	// environment (the chart's << >> writes the variable unquoted).
	if js := v.Config.Merge.JetStream; js.Cipher != "chachapoly" || js.Key != "<< $JS_KEY >>" {
		t.Errorf("jetstream cipher %q key %q, want chachapoly and << $JS_KEY >>", js.Cipher, js.Key)
	}
	if e, ok := v.Container.Env["JS_KEY"]; !ok || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
		t.Error("JS_KEY is not taken from a Secret in container.env")
	}
	// TLS for clients and routes, with the CA that verifies the peer.
	for what, tls := range map[string]chartTLS{"clients": v.Config.NATS.TLS, "routes": v.Config.Cluster.TLS} {
		if !tls.Enabled || tls.SecretName == "" || tls.CA == "" {
			t.Errorf("TLS for %s: %+v, want enabled from a Secret with a CA (verify)", what, tls)
		}
	}
	m := readManifests(t)
	for _, c := range m.configMaps {
		if r, ok := c.Data["ROSETTA_STREAM_REPLICAS"]; ok && r != "3" {
			t.Errorf("ROSETTA_STREAM_REPLICAS=%s on a three-node cluster, want 3", r)
		}
	}
}

// chartTLS is a TLS block of the chart's values: with ca set, the chart
// writes ca_file and verify: true.
type chartTLS struct {
	Enabled    bool   `json:"enabled"`
	SecretName string `json:"secretName"`
	CA         string `json:"ca"`
}
