package testkit

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Redis is a redis-server owned by one test.
type Redis struct {
	Port int
	Dir  string
	opts RedisOptions
	// admin is the password of the "testkit" user readiness checks use
	// when the server has ACL users.
	admin string
	// client is the certificate readiness checks present to a server that
	// verifies clients.
	client *Leaf
	cmd    *exec.Cmd
	// exited is closed when cmd has exited (its one Wait is done).
	exited chan struct{}
}

// RedisOptions make a server that checks who connects.
type RedisOptions struct {
	// TLS, when set, makes the server listen with TLS only (no plain
	// port), with a certificate the CA issues for 127.0.0.1 and localhost.
	TLS *CA
	// TLSAuthClients makes the TLS server require a client certificate
	// the CA issued.
	TLSAuthClients bool
	// Users are ACL users, one rule line each as after `ACL SETUSER`
	// ("rosetta on >pw ~dlq:* +@all"). With any, the default user is off
	// (so a client without credentials is refused).
	Users []string
	// ConfFile is a redis.conf (deploy/redis/redis.conf) included before
	// testkit's own directives, which override where it listens and
	// persistence; its `dir` lines are replaced by the test's directory
	// (Redis changes into it while reading the file). Its ACL lines stay
	// as they are (testkit adds no `user default off` of its own then).
	ConfFile string
}

// StartRedis starts redis-server on a free port with AOF in a temp dir; it is
// killed when the test ends.
func StartRedis(tb testing.TB) *Redis { return StartRedisWith(tb, RedisOptions{}) }

// StartRedisWith starts redis-server like StartRedis, with TLS or ACL
// users as o asks.
func StartRedisWith(tb testing.TB, o RedisOptions) *Redis {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("testkit: redis-server not found: install it (apt-get install redis-server)")
	}
	r := &Redis{Dir: tb.TempDir(), opts: o}
	if len(o.Users) > 0 || o.ConfFile != "" {
		r.admin = "admin-" + RandomSuffix()
	}
	if o.TLS != nil {
		server := o.TLS.Issue(tb, "redis-server-"+RandomSuffix(), "127.0.0.1", "localhost")
		client := o.TLS.Issue(tb, "redis-testkit-"+RandomSuffix(), "testkit")
		r.client = &client
		if err := r.writeTLSConf(server); err != nil {
			tb.Fatalf("testkit: redis tls config: %v", err)
		}
	}
	for attempt := 0; ; attempt++ {
		r.Port = FreePort(tb)
		err := r.start(bin)
		if err == nil {
			break
		}
		if attempt == 3 {
			tb.Fatalf("testkit: start redis: %v", err)
		}
	}
	tb.Cleanup(r.Kill)
	return r
}

// writeTLSConf writes the TLS directives into an included file, so that
// the command line stays free of paths with spaces.
func (r *Redis) writeTLSConf(server Leaf) error {
	auth := "no"
	if r.opts.TLSAuthClients {
		auth = "yes"
	}
	conf := fmt.Sprintf("tls-cert-file %q\ntls-key-file %q\ntls-ca-cert-file %q\ntls-auth-clients %s\n",
		server.CertFile, server.KeyFile, r.opts.TLS.CertFile, auth)
	return os.WriteFile(filepath.Join(r.Dir, "tls.conf"), []byte(conf), 0o600)
}

func (r *Redis) start(bin string) error {
	var conf []string
	if r.opts.ConfFile != "" {
		base, err := r.baseConf()
		if err != nil {
			return err
		}
		conf = append(conf, fmt.Sprintf("include %q", base))
	}
	conf = append(conf,
		"bind 127.0.0.1",
		fmt.Sprintf("dir %q", r.Dir),
		"appendonly yes", "appendfsync always", `save ""`,
		fmt.Sprintf("logfile %q", filepath.Join(r.Dir, "redis.log")),
	)
	if r.opts.TLS != nil {
		conf = append(conf, "port 0", "tls-port "+strconv.Itoa(r.Port), fmt.Sprintf("include %q", filepath.Join(r.Dir, "tls.conf")))
	} else {
		conf = append(conf, "port "+strconv.Itoa(r.Port))
	}
	if r.opts.ConfFile == "" && len(r.opts.Users) > 0 {
		conf = append(conf, "user default off")
	}
	if r.admin != "" {
		conf = append(conf, "user testkit on >"+r.admin+" ~* &* +@all")
		for _, u := range r.opts.Users {
			conf = append(conf, "user "+u)
		}
	}
	path := filepath.Join(r.Dir, "redis.conf")
	if err := os.WriteFile(path, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	// Errors in the config file go to stderr, before any logfile.
	out, err := os.Create(filepath.Join(r.Dir, "stderr.log"))
	if err != nil {
		return err
	}
	defer out.Close()
	r.cmd = exec.Command(bin, path)
	r.cmd.Stdout, r.cmd.Stderr = out, out
	if err := r.cmd.Start(); err != nil {
		return err
	}
	r.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		_ = cmd.Wait()
		close(exited)
	}(r.cmd, r.exited)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-r.exited:
			r.cmd = nil
			stderr, _ := os.ReadFile(out.Name())
			log, _ := os.ReadFile(filepath.Join(r.Dir, "redis.log"))
			return fmt.Errorf("redis-server exited: %s%s", stderr, log)
		default:
		}
		if r.ready() {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(r.Dir, "redis.log"))
	r.Kill()
	return fmt.Errorf("redis on %d not ready: %s", r.Port, log)
}

// ready reports whether the server answers PING with PONG. An accepting
// socket is not enough: while Redis replays its AOF after a restart it
// answers every command with LOADING, and a test that writes then fails.
func (r *Redis) ready() bool {
	var c net.Conn
	var err error
	d := &net.Dialer{Timeout: 200 * time.Millisecond}
	if r.opts.TLS != nil {
		c, err = tls.DialWithDialer(d, "tcp", r.Addr(), &tls.Config{
			RootCAs: r.opts.TLS.Pool(), Certificates: []tls.Certificate{r.client.TLS}, MinVersion: tls.VersionTLS12})
	} else {
		c, err = d.Dial("tcp", r.Addr())
	}
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	cmd := "PING\r\n"
	if r.admin != "" {
		cmd = "AUTH testkit " + r.admin + "\r\n" + cmd
	}
	if _, err := c.Write([]byte(cmd)); err != nil {
		return false
	}
	rd := bufio.NewReader(c)
	if r.admin != "" {
		if line, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
			return false
		}
	}
	line, err := rd.ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

// baseConf copies ConfFile into the test's directory with its dir lines
// pointing there, and returns the copy's path.
func (r *Redis) baseConf() (string, error) {
	b, err := os.ReadFile(r.opts.ConfFile)
	if err != nil {
		return "", err
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "dir" {
			lines[i] = fmt.Sprintf("dir %q", r.Dir)
		}
	}
	path := filepath.Join(r.Dir, "base.conf")
	return path, os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600)
}

// Addr is host:port.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.Port) }

// URL is a redis:// URL, rediss:// when the server speaks TLS. It holds
// no credentials.
func (r *Redis) URL() string {
	if r.opts.TLS != nil {
		return "rediss://" + r.Addr() + "/0"
	}
	return "redis://" + r.Addr() + "/0"
}

// ClientCert is the certificate (issued by the TLS CA) the server accepts
// from a client when it verifies clients; nil without TLS.
func (r *Redis) ClientCert() *Leaf { return r.client }

// Kill stops the server with SIGKILL (data on disk stays for Restart).
func (r *Redis) Kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		<-r.exited
		r.cmd = nil
	}
}

// Restart starts the server again on the same port and dir.
func (r *Redis) Restart(tb testing.TB) {
	tb.Helper()
	r.Kill()
	bin, _ := exec.LookPath("redis-server")
	if err := r.start(bin); err != nil {
		tb.Fatalf("testkit: restart redis: %v", err)
	}
}
