// Package configstore holds Rosetta's configuration (sources, destinations,
// pipelines) and the status the services report, in the config PostgreSQL
// database. Secrets are stored encrypted and only come back decrypted through
// the methods services use, never through the API's views.
package configstore

import (
	"encoding/json"
	"github.com/rosettacdc/rosetta/pkg/pglink"
	"time"
)

// PipelineStatus is what an admin asked a pipeline to do.
type PipelineStatus string

const (
	StatusStart PipelineStatus = "START"
	StatusPause PipelineStatus = "PAUSE"
)

// Health of one pipeline destination as reported by its sink.
type Health string

const (
	HealthUnknown Health = "UNKNOWN"
	HealthHealthy Health = "HEALTHY"
	HealthLagging Health = "LAGGING"
	HealthError   Health = "ERROR"
	HealthPaused  Health = "PAUSED"
)

// Source is a PostgreSQL database changes are captured from.
type Source struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Database string `json:"database"`
	User     string `json:"user"`
	Password string `json:"-"` // decrypted; only filled for services
	// PasswordSet says whether a password is stored, for views that must
	// not show it.
	PasswordSet bool   `json:"password_set"`
	Publication string `json:"publication"`
	Slot        string `json:"slot"`
	SSLMode     string `json:"sslmode"`
	// SSLRootCert and SSLCert are PEM text or a path under
	// ROSETTA_KEYS_DIR; SSLKey is the client key, decrypted, only filled
	// for services (SSLKeySet says whether one is stored).
	SSLRootCert    string `json:"sslrootcert"`
	SSLCert        string `json:"sslcert"`
	SSLKey         string `json:"-"`
	SSLKeySet      bool   `json:"sslkey_set"`
	RequireAuth    string `json:"require_auth"`
	ChannelBinding string `json:"channel_binding"`
	// AdoptSlot and AdoptPublication: someone else created them; Rosetta
	// uses them as they are and never alters or drops them.
	AdoptSlot        bool `json:"adopt_slot"`
	AdoptPublication bool `json:"adopt_publication"`
	// Partitions is how many partitions the source's changes are spread
	// over by a hash of their key (contracts.Partition), 1 to 64.
	Partitions int       `json:"partitions"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// Destination is a place changes are applied to. Config holds the
// type-specific settings without secret fields; Secrets holds the secret
// fields (password, private_key, private_key_passphrase) decrypted, and is
// only filled for services.
type Destination struct {
	ID      int64             `json:"id"`
	Name    string            `json:"name"`
	Type    string            `json:"type"`
	Config  map[string]any    `json:"config"`
	Secrets map[string]string `json:"-"`
	// SecretKeys names the secret fields stored (not their values), for
	// views that must not show them.
	SecretKeys []string  `json:"secrets_set"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// ConfigWithSecrets returns the full driver config: Config merged with
// Secrets, as JSON, for a driver to decode into its typed config.
func (d Destination) ConfigWithSecrets() (json.RawMessage, error) {
	m := make(map[string]any, len(d.Config)+len(d.Secrets))
	for k, v := range d.Config {
		m[k] = v
	}
	for k, v := range d.Secrets {
		m[k] = v
	}
	return json.Marshal(m)
}

// Pipeline replicates tables of one source to one or more destinations.
type Pipeline struct {
	ID             int64          `json:"id"`
	Name           string         `json:"name"`
	SourceID       int64          `json:"source_id"`
	DestinationIDs []int64        `json:"destination_ids"`
	Tables         []string       `json:"tables"` // "schema.table"
	Status         PipelineStatus `json:"status"`
	CreatedAt      time.Time      `json:"created_at"`
	UpdatedAt      time.Time      `json:"updated_at"`
	// SourcePartitions is the source's partitions setting (read with the
	// pipeline: one consumer per partition for each destination).
	SourcePartitions int `json:"-"`
}

// DestinationState is the sink's report for one (pipeline, destination).
type DestinationState struct {
	PipelineID    int64     `json:"pipeline_id"`
	DestinationID int64     `json:"destination_id"`
	Health        Health    `json:"health"`
	LastError     string    `json:"last_error,omitempty"`
	LastAppliedAt time.Time `json:"last_applied_at,omitzero"`
	UpdatedAt     time.Time `json:"updated_at"`
	// Progress is the sink's last progress report (SetDestinationProgress);
	// zero until it made one. SetDestinationState ignores it.
	Progress DestinationProgress `json:"progress"`
}

// DestinationProgress is how far one pipeline destination has applied the
// source's changes, reported by its sink after committed batches.
type DestinationProgress struct {
	PipelineID    int64 `json:"pipeline_id"`
	DestinationID int64 `json:"destination_id"`
	// AppliedCommitLSN ("16/B374D848") and AppliedCommitTime are the
	// source commit LSN and commit time of the newest change applied.
	// Empty and zero until a change was applied.
	AppliedCommitLSN  string    `json:"applied_commit_lsn,omitempty"`
	AppliedCommitTime time.Time `json:"applied_commit_time,omitzero"`
	// Throughput is the changes per second applied over the minute before
	// At.
	Throughput float64 `json:"throughput"`
	// At is when the sink measured this.
	At time.Time `json:"at,omitzero"`
}

// LagSource is what a source's own position is known to be: the position
// capture last confirmed to its slot and the source's WAL position at the
// last WAL check, whichever is newer (both are lower bounds of the
// source's current WAL position).
type LagSource struct {
	SourceID int64
	// LSN is the newer of the two, 0 when neither is known.
	LSN uint64
	// From says which one LSN is: "wal_check" or "confirmed".
	From string
	At   time.Time
}

// SourceState is the capture's report for one source.
type SourceState struct {
	SourceID     int64     `json:"source_id"`
	State        string    `json:"state"` // RUNNING, STOPPED, ERROR
	LastError    string    `json:"last_error,omitempty"`
	ConfirmedLSN string    `json:"confirmed_lsn,omitempty"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// Security is what protects the source's connections: every connection
// to it (API checks, capture, backfill, the WAL monitor) applies it.
func (s Source) Security() pglink.Security {
	return pglink.Security{SSLMode: s.SSLMode, RootCert: s.SSLRootCert, ClientCert: s.SSLCert, ClientKey: s.SSLKey,
		RequireAuth: s.RequireAuth, ChannelBinding: s.ChannelBinding}
}
