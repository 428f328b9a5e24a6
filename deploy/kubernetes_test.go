package deploy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// manifests holds every object of kubernetes/, decoded strictly (an unknown
// or misspelt field fails) into the Kubernetes API types.
type manifests struct {
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	secrets     []*corev1.Secret
	configMaps  []*corev1.ConfigMap
	pdbs        []*policyv1.PodDisruptionBudget
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

func readManifests(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("kubernetes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in kubernetes/: %v", err)
	}
	var m manifests
	for _, file := range files {
		if filepath.Base(file) == "nats-values.yaml" {
			continue // Helm values, not a manifest
		}
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSep.Split(string(body), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			where := fmt.Sprintf("%s document %d", file, i+1)
			var head struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			var obj any
			switch head.APIVersion + " " + head.Kind {
			case "apps/v1 Deployment":
				d := &appsv1.Deployment{}
				m.deployments, obj = append(m.deployments, d), d
			case "v1 Service":
				s := &corev1.Service{}
				m.services, obj = append(m.services, s), s
			case "v1 Secret":
				s := &corev1.Secret{}
				m.secrets, obj = append(m.secrets, s), s
			case "v1 ConfigMap":
				c := &corev1.ConfigMap{}
				m.configMaps, obj = append(m.configMaps, c), c
			case "policy/v1 PodDisruptionBudget":
				p := &policyv1.PodDisruptionBudget{}
				m.pdbs, obj = append(m.pdbs, p), p
			case "v1 Namespace":
				obj = &corev1.Namespace{}
			default:
				t.Fatalf("%s: %s %s is not a kind this test knows; add it", where, head.APIVersion, head.Kind)
			}
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Fatalf("%s: strict decode: %v", where, err)
			}
		}
	}
	return m
}

func stripComments(doc string) string {
	var b bytes.Buffer
	for line := range strings.SplitSeq(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// TestKubernetesManifests checks the manifests against the binary: every
// ROSETTA_* variable exists, every Deployment runs a rosetta command with
// liveness and readiness probes on the port and paths that command serves,
// resources and a non-root user, and capture and every sink have a
// PodDisruptionBudget.
func TestKubernetesManifests(t *testing.T) {
	b := readBinary(t)
	m := readManifests(t)

	// Shared settings: the ConfigMap and the Secret.
	shared := map[string]string{}
	for _, c := range m.configMaps {
		for k, v := range c.Data {
			shared[k] = v
		}
	}
	for _, s := range m.secrets {
		if s.Name == natsUsersSecret {
			continue // read key by key (roleIdentity), not as the environment
		}
		for k, v := range s.StringData {
			shared[k] = v
		}
		for k, v := range s.Data {
			shared[k] = string(v)
		}
	}
	for k := range shared {
		if !b.env[k] {
			t.Errorf("ConfigMap or Secret key %s: pkg/settings has no such variable", k)
		}
	}
	for _, k := range []string{"ROSETTA_SECRET_KEY", "ROSETTA_CONFIG_DSN", "ROSETTA_NATS_URL", "ROSETTA_STREAM_REPLICAS"} {
		if _, ok := shared[k]; !ok {
			t.Errorf("neither the ConfigMap nor the Secret sets %s", k)
		}
	}
	for _, s := range m.secrets {
		for k := range s.StringData {
			if k == "ROSETTA_NATS_URL" || k == "ROSETTA_STREAM_REPLICAS" {
				t.Errorf("Secret holds %s, which is no secret", k)
			}
		}
	}

	sinkDests := map[string]string{}
	components := map[string]*appsv1.Deployment{}
	for _, d := range m.deployments {
		t.Run(d.Name, func(t *testing.T) {
			spec := d.Spec.Template.Spec
			if sel, err := metav1Selector(d.Spec.Selector); err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("selector %v does not match the pod template's labels %v", d.Spec.Selector, d.Spec.Template.Labels)
			}
			if sc := spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
				t.Error("pod securityContext lacks runAsNonRoot: true")
			}
			if len(spec.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(spec.Containers))
			}
			c := spec.Containers[0]
			if !strings.HasPrefix(c.Image, "ghcr.io/rosettacdc/rosetta:") {
				t.Errorf("image %s: want the rosetta image deploy/Dockerfile builds", c.Image)
			}
			if len(c.Args) == 0 || !b.commands[c.Args[0]] {
				t.Fatalf("args %v: want a rosetta command first", c.Args)
			}
			cmd := c.Args[0]
			components[cmd] = d
			env := map[string]string{}
			for k, v := range shared {
				env[k] = v
			}
			for _, e := range c.Env {
				if strings.HasPrefix(e.Name, "ROSETTA_") && !b.env[e.Name] {
					t.Errorf("env %s: pkg/settings has no such variable", e.Name)
				}
				env[e.Name] = e.Value
			}
			ports := map[string]int32{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("resources %v: want cpu and memory requests and a memory limit", c.Resources)
			}
			if c.LivenessProbe == nil || c.ReadinessProbe == nil {
				t.Fatal("want both a liveness and a readiness probe")
			}
			probePort := func(p *corev1.Probe) (string, int32) {
				switch {
				case p.HTTPGet != nil:
					return p.HTTPGet.Path, resolvePort(t, p.HTTPGet.Port.String(), ports)
				case p.TCPSocket != nil:
					return "", resolvePort(t, p.TCPSocket.Port.String(), ports)
				}
				t.Fatal("probe is neither httpGet nor tcpSocket")
				return "", 0
			}
			livePath, livePort := probePort(c.LivenessProbe)
			readyPath, readyPort := probePort(c.ReadinessProbe)
			switch cmd {
			case "api":
				want := int32(port(t, env["ROSETTA_HTTP_ADDR"]))
				if livePort != want || readyPort != want || readyPath != b.apiHealth || livePath != "" && livePath != b.apiHealth {
					t.Errorf("probes %s:%d and %s:%d; the API serves %s on %d (ROSETTA_HTTP_ADDR)", livePath, livePort, readyPath, readyPort, b.apiHealth, want)
				}
			case "capture", "sink":
				addr, ok := env["ROSETTA_HEALTH_ADDR"]
				if !ok {
					t.Fatal("ROSETTA_HEALTH_ADDR is not set: the probes would find nothing listening")
				}
				want := int32(port(t, addr))
				if livePath != b.liveness || readyPath != b.ready || livePort != want || readyPort != want {
					t.Errorf("probes %s:%d and %s:%d; %s serves %s and %s on %d (ROSETTA_HEALTH_ADDR)",
						livePath, livePort, readyPath, readyPort, cmd, b.liveness, b.ready, want)
				}
				if ma, ok := env["ROSETTA_METRICS_ADDR"]; ok && ports["metrics"] != int32(port(t, ma)) {
					t.Errorf("metrics port %d, ROSETTA_METRICS_ADDR %s", ports["metrics"], ma)
				}
			}
			roleIdentity(t, c, cmd, m.secrets)
			if cmd == "sink" {
				ids := env["ROSETTA_SINK_DESTINATIONS"]
				if !regexp.MustCompile(`^[1-9][0-9]*(,[1-9][0-9]*)*$`).MatchString(ids) {
					t.Errorf("ROSETTA_SINK_DESTINATIONS=%q: want the destination ids of this sink Deployment", ids)
				}
				if other, dup := sinkDests[ids]; dup {
					t.Errorf("destinations %s are run by %s too", ids, other)
				}
				sinkDests[ids] = d.Name
			}
			if cmd == "capture" || cmd == "sink" {
				if !hasPDB(m.pdbs, d) {
					t.Error("no PodDisruptionBudget selects its pods")
				}
			}
		})
	}
	for _, need := range []string{"api", "capture", "sink"} {
		if components[need] == nil {
			t.Errorf("no Deployment runs rosetta %s", need)
		}
	}
	if d := components["capture"]; d != nil && (d.Spec.Replicas == nil || *d.Spec.Replicas < 2) {
		t.Error("capture runs one replica: a standby takes over only when there is one")
	}
	for _, s := range m.services {
		matched := false
		for _, d := range m.deployments {
			if labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
				matched = true
			}
		}
		if !matched {
			t.Errorf("Service %s selects no Deployment's pods", s.Name)
		}
	}
}

// natsUsersSecret holds one NATS password per role, keyed by role.
const natsUsersSecret = "rosetta-nats-users"

// roleIdentity checks that a service connects to NATS as its role: the
// role's user of deploy/nats/auth.conf (and the Helm values), the role's
// inbox prefix, and the role's password from natsUsersSecret.
func roleIdentity(t *testing.T, c corev1.Container, role string, secrets []*corev1.Secret) {
	t.Helper()
	var user, prefix string
	var pw *corev1.SecretKeySelector
	for _, e := range c.Env {
		switch e.Name {
		case "ROSETTA_NATS_USER":
			user = e.Value
		case "ROSETTA_NATS_INBOX_PREFIX":
			prefix = e.Value
		case "ROSETTA_NATS_PASSWORD":
			if e.ValueFrom != nil {
				pw = e.ValueFrom.SecretKeyRef
			}
		}
	}
	if user != role || prefix != "_INBOX_rosetta_"+role {
		t.Errorf("NATS user %q inbox prefix %q, want %q and _INBOX_rosetta_%s", user, prefix, role, role)
	}
	if pw == nil || pw.Name != natsUsersSecret || pw.Key != role {
		t.Errorf("ROSETTA_NATS_PASSWORD from %+v, want key %s of Secret %s", pw, role, natsUsersSecret)
		return
	}
	for _, s := range secrets {
		if s.Name == natsUsersSecret {
			if _, ok := s.StringData[role]; !ok {
				t.Errorf("Secret %s has no key %s", natsUsersSecret, role)
			}
			return
		}
	}
	t.Errorf("no Secret %s in kubernetes/", natsUsersSecret)
}

func resolvePort(t *testing.T, p string, named map[string]int32) int32 {
	t.Helper()
	if n, ok := named[p]; ok {
		return n
	}
	return int32(port(t, ":"+p))
}

func hasPDB(pdbs []*policyv1.PodDisruptionBudget, d *appsv1.Deployment) bool {
	for _, p := range pdbs {
		sel, err := metav1Selector(p.Spec.Selector)
		if err == nil && p.Namespace == d.Namespace && sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			return true
		}
	}
	return false
}

func metav1Selector(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return nil, fmt.Errorf("no selector")
	}
	return metav1.LabelSelectorAsSelector(s)
}
