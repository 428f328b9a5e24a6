package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// natsUser is one user of a NATS authorization block.
type natsUser struct {
	Password    string
	Publish     []string
	Subscribe   []string
	AllowsReply bool // allow_responses
}

// authConfUsers reads deploy/nats/auth.conf's users. It reads the file's
// own layout (one `user:` per block, `publish: { allow: [...] }`), which
// the faults suite proves the server accepts (TestNATSRoles).
func authConfUsers(t *testing.T) map[string]natsUser {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("nats", "auth.conf"))
	if err != nil {
		t.Fatal(err)
	}
	quoted := regexp.MustCompile(`"([^"]+)"`)
	list := func(block, kind string) []string {
		m := regexp.MustCompile(kind + `: \{ allow: \[((?s:.*?))\] \}`).FindStringSubmatch(block)
		if m == nil {
			return nil
		}
		var out []string
		for _, q := range quoted.FindAllStringSubmatch(m[1], -1) {
			out = append(out, q[1])
		}
		return out
	}
	users := map[string]natsUser{}
	for _, block := range strings.Split(string(body), "user: ")[1:] {
		name := strings.Fields(block)[0]
		pw := regexp.MustCompile(`password: (\S+)`).FindStringSubmatch(block)
		if pw == nil {
			t.Fatalf("auth.conf user %s has no password", name)
		}
		users[name] = natsUser{Password: pw[1], Publish: list(block, "publish"), Subscribe: list(block, "subscribe"),
			AllowsReply: strings.Contains(block, "allow_responses")}
	}
	if len(users) == 0 {
		t.Fatal("no users in auth.conf")
	}
	return users
}

// TestNATSHelmUsers: the Helm values give the Kubernetes NATS servers the
// users of deploy/nats/auth.conf, permission for permission, with each
// password taken from the environment, which takes it from the Secret the
// services read theirs from.
func TestNATSHelmUsers(t *testing.T) {
	body, err := os.ReadFile(filepath.Join("kubernetes", "nats-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Container struct {
			Env map[string]struct {
				ValueFrom *struct {
					SecretKeyRef *struct {
						Name string `json:"name"`
						Key  string `json:"key"`
					} `json:"secretKeyRef"`
				} `json:"valueFrom"`
			} `json:"env"`
		} `json:"container"`
		Config struct {
			Merge struct {
				Authorization struct {
					Users []struct {
						User        string `json:"user"`
						Password    string `json:"password"`
						Permissions struct {
							Publish struct {
								Allow []string `json:"allow"`
							} `json:"publish"`
							Subscribe struct {
								Allow []string `json:"allow"`
							} `json:"subscribe"`
							AllowResponses *struct {
								Max     int    `json:"max"`
								Expires string `json:"expires"`
							} `json:"allow_responses"`
						} `json:"permissions"`
					} `json:"users"`
				} `json:"authorization"`
			} `json:"merge"`
		} `json:"config"`
	}
	if err := yaml.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	want := authConfUsers(t)
	got := map[string]natsUser{}
	for _, u := range v.Config.Merge.Authorization.Users {
		p := u.Permissions
		got[u.User] = natsUser{Password: u.Password, Publish: p.Publish.Allow, Subscribe: p.Subscribe.Allow, AllowsReply: p.AllowResponses != nil}
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("Helm values lack NATS user %s", name)
			continue
		}
		if !slices.Equal(g.Publish, w.Publish) || !slices.Equal(g.Subscribe, w.Subscribe) || g.AllowsReply != w.AllowsReply {
			t.Errorf("user %s: Helm values allow publish %v subscribe %v responses %v; auth.conf %v %v %v",
				name, g.Publish, g.Subscribe, g.AllowsReply, w.Publish, w.Subscribe, w.AllowsReply)
		}
		// auth.conf's $NATS_X_PASSWORD, written unquoted by the chart.
		if g.Password != "<< "+w.Password+" >>" {
			t.Errorf("user %s password %q, want << %s >>", name, g.Password, w.Password)
		}
		e, ok := v.Container.Env[strings.TrimPrefix(w.Password, "$")]
		if !ok || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
			e.ValueFrom.SecretKeyRef.Name != natsUsersSecret || e.ValueFrom.SecretKeyRef.Key != name {
			t.Errorf("container.env %s is not key %s of Secret %s", w.Password, name, natsUsersSecret)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("Helm values have NATS user %s, which auth.conf lacks", name)
		}
	}
}
