package dlq

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestDeployRedisConf starts redis-server with deploy/redis/redis.conf and
// the ACL user deploy/compose/compose.yaml declares: a client without
// credentials is refused, the rosetta user runs every queue operation, and
// the rules in compose, in redis.conf's example and in ACLRules agree.
func TestDeployRedisConf(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..", "deploy")
	conf, err := filepath.Abs(filepath.Join(root, "redis", "redis.conf"))
	if err != nil {
		t.Fatal(err)
	}
	compose, err := os.ReadFile(filepath.Join(root, "compose", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := regexp.MustCompile(`(?s)command: \["redis-server", "/usr/local/etc/redis/redis.conf", "--user", (.*?)\]`).FindSubmatch(compose)
	if cmd == nil {
		t.Fatal("compose.yaml: no redis-server command declaring a --user")
	}
	var args []string
	for _, m := range regexp.MustCompile(`"([^"]*)"`).FindAllSubmatch(cmd[1], -1) {
		args = append(args, string(m[1]))
	}
	if len(args) < 3 || args[0] != "rosetta" || args[1] != "on" || !strings.HasPrefix(args[2], ">${ROSETTA_REDIS_PASSWORD") {
		t.Fatalf("compose declares %v; want rosetta on >${ROSETTA_REDIS_PASSWORD…} …", args)
	}
	if got := strings.Join(args[3:], " "); got != ACLRules {
		t.Fatalf("compose grants\n%s\nACLRules are\n%s", got, ACLRules)
	}
	confText, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(confText), "#   user rosetta on >PASSWORD "+ACLRules+"\n") {
		t.Fatal("redis.conf's example user line differs from ACLRules")
	}

	const pw = "deploy-test-password"
	r := testkit.StartRedisWith(t, testkit.RedisOptions{ConfFile: conf, Users: []string{"rosetta on >" + pw + " " + ACLRules}})
	ctx := context.Background()
	anon := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
	defer anon.Close()
	if err := anon.Ping(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Fatalf("PING without credentials = %v; want NOAUTH (user default off)", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr(), Username: "rosetta", Password: pw, MaxRetries: -1})
	defer rdb.Close()
	exerciseQueue(t, rdb)
}
