package natsx

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// EphemeralCreateSubject is the JetStream API subject that creates an
// ephemeral consumer on stream: the server refuses a durable name on it
// (the named create subjects accept one in the request body), so a reader
// allowed only this subject cannot make a consumer that holds changes in
// an interest-retention stream.
func EphemeralCreateSubject(stream string) string { return "$JS.API.CONSUMER.CREATE." + stream }

// CreateEphemeral creates an ephemeral consumer with cfg (Durable must be
// empty; a Name is generated when empty) through EphemeralCreateSubject
// and returns it. nats.go's own create uses the named subject.
func CreateEphemeral(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	if cfg.Durable != "" {
		return nil, fmt.Errorf("create ephemeral consumer on %s: a durable name was given", stream)
	}
	if cfg.Name == "" {
		cfg.Name = nuid.Next()
	}
	req, err := json.Marshal(struct {
		Stream string                   `json:"stream_name"`
		Config jetstream.ConsumerConfig `json:"config"`
	}{stream, cfg})
	if err != nil {
		return nil, err
	}
	msg, err := js.Conn().RequestWithContext(ctx, EphemeralCreateSubject(stream), req)
	if err != nil {
		return nil, fmt.Errorf("create ephemeral consumer on %s: %w", stream, err)
	}
	var resp struct {
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, fmt.Errorf("create ephemeral consumer on %s: %w", stream, err)
	}
	if resp.Error != nil {
		if resp.Error.ErrorCode == jetstream.JSErrCodeStreamNotFound {
			return nil, fmt.Errorf("create ephemeral consumer on %s: %w", stream, jetstream.ErrStreamNotFound)
		}
		return nil, fmt.Errorf("create ephemeral consumer on %s: %w", stream, resp.Error)
	}
	return js.Consumer(ctx, stream, cfg.Name)
}
