package natsx

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The users of the embedded server of `rosetta dev`. The server admits no
// anonymous client: a local user who can reach its port can read, forge or
// delete nothing without the credentials file, which only the user running
// Rosetta can read.
const (
	// ServicesUser is the user the services inside the process connect as.
	ServicesUser = "rosetta"
	// TapUser is the user of `rosetta tail`, bin/duckquery and other
	// programs that only read changes.
	TapUser = "tap"
)

// TapInboxPrefix is the tap user's inbox prefix, the only reply subjects
// it may subscribe to, on the embedded server and in deploy/nats/auth.conf:
// a reader cannot read the replies meant for the services (rows they
// fetch, JetStream API answers).
const TapInboxPrefix = "_INBOX_rosetta_tap"

// CredentialsFile is the name, inside the data dir, of the file holding the
// embedded server's generated users.
const CredentialsFile = "nats-credentials.json"

// UserPass is one user of the embedded server.
type UserPass struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// Option is the nats.go option that connects as u.
func (u UserPass) Option() nats.Option { return nats.UserInfo(u.User, u.Password) }

// DevCredentials are the generated users of the embedded server.
type DevCredentials struct {
	Services UserPass `json:"services"`
	Tap      UserPass `json:"tap"`
}

// LoadOrCreateDevCredentials reads dir/CredentialsFile, or creates it (mode
// 0600, random passwords) on first use. Kept across restarts so a running
// `rosetta tail` and the services agree.
func LoadOrCreateDevCredentials(dir string) (DevCredentials, error) {
	path := filepath.Join(dir, CredentialsFile)
	c, err := ReadDevCredentials(dir)
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return DevCredentials{}, err
	}
	c = DevCredentials{Services: UserPass{User: ServicesUser}, Tap: UserPass{User: TapUser}}
	for _, p := range []*string{&c.Services.Password, &c.Tap.Password} {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return DevCredentials{}, fmt.Errorf("generate nats credentials: %w", err)
		}
		*p = hex.EncodeToString(b)
	}
	body, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return DevCredentials{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return DevCredentials{}, fmt.Errorf("write %s: %w", path, err)
	}
	// O_EXCL: two processes starting on one data dir do not overwrite each
	// other's file; the loser reads the winner's.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return ReadDevCredentials(dir)
	}
	if err != nil {
		return DevCredentials{}, fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(append(body, '\n')); err != nil {
		f.Close()
		return DevCredentials{}, fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return DevCredentials{}, fmt.Errorf("write %s: %w", path, err)
	}
	return c, nil
}

// ReadDevCredentials reads dir/CredentialsFile; the error wraps
// fs.ErrNotExist when `rosetta dev` never ran with that data dir.
func ReadDevCredentials(dir string) (DevCredentials, error) {
	path := filepath.Join(dir, CredentialsFile)
	body, err := os.ReadFile(path)
	if err != nil {
		return DevCredentials{}, fmt.Errorf("read nats credentials: %w", err)
	}
	var c DevCredentials
	if err := json.Unmarshal(body, &c); err != nil || c.Services.Password == "" || c.Tap.Password == "" {
		return DevCredentials{}, fmt.Errorf("read nats credentials %s: not a credentials file written by rosetta dev", path)
	}
	return c, nil
}

// Users are the server users of c: the services with every permission, the
// tap with TapPermissions.
func (c DevCredentials) Users() []*server.User {
	return []*server.User{
		{Username: c.Services.User, Password: c.Services.Password},
		{Username: c.Tap.User, Password: c.Tap.Password, Permissions: TapPermissions()},
	}
}

// TapPermissions let a program read changes and nothing else: subscribe to
// change subjects and its own inboxes (TapInboxPrefix), read stream and consumer info, and
// create ephemeral consumers (only EphemeralCreateSubject, on which the
// server refuses a durable name) and read them. It cannot publish changes
// or config events, delete or purge streams, delete consumers, or create a
// durable one. deploy/nats/auth.conf gives its tap user the same.
func TapPermissions() *server.Permissions {
	return &server.Permissions{
		Publish: &server.SubjectPermission{
			Allow: []string{
				"$JS.API.INFO",
				"$JS.API.STREAM.NAMES",
				"$JS.API.STREAM.LIST",
				"$JS.API.STREAM.INFO.*",
				"$JS.API.CONSUMER.CREATE.*",
				"$JS.API.CONSUMER.NAMES.*",
				"$JS.API.CONSUMER.LIST.*",
				"$JS.API.CONSUMER.INFO.*.*",
				"$JS.API.CONSUMER.MSG.NEXT.*.*",
				"rosetta.destquery.>",
			},
		},
		Subscribe: &server.SubjectPermission{
			Allow: []string{"rosetta.cdc.>", TapInboxPrefix + ".>"},
		},
	}
}

// TapOptions are the options a reading program (rosetta tail, duckquery)
// connects to the embedded server of the `rosetta dev` using dataDir with:
// its tap user and TapInboxPrefix, when that data dir has a credentials
// file. Without one
// (no `rosetta dev` ran there, or the program talks to an external NATS
// whose credentials come from elsewhere) it returns no option, and an
// embedded server refuses the connection with an authorization error.
func TapOptions(dataDir string) ([]nats.Option, error) {
	c, err := ReadDevCredentials(dataDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return []nats.Option{c.Tap.Option(), nats.CustomInboxPrefix(TapInboxPrefix)}, nil
}

// Tap is a JetStream context connected as the tap user: it can read
// changes and nothing else (TapPermissions).
type Tap struct {
	JS jetstream.JetStream
}

// ConnectTap connects to url as the tap user (user is its credentials'
// Option) for a service that reads changes on people's behalf.
func ConnectTap(ctx context.Context, url string, log *slog.Logger, user nats.Option, extra ...nats.Option) (*nats.Conn, *Tap, error) {
	nc, js, err := ConnectWith(ctx, url, "rosetta tap", log, DefaultLiveness(), append([]nats.Option{user, nats.CustomInboxPrefix(TapInboxPrefix)}, extra...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect as the tap user: %w", err)
	}
	return nc, &Tap{JS: js}, nil
}
