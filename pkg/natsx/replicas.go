package natsx

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// JetStream's error codes for a replica count the servers cannot place.
const (
	jsClusterNoPeers        = 10005 // a cluster with fewer servers than replicas
	jsInsufficientResources = 10023 // one more way a cluster says so
	jsReplicasNotSupported  = 10074 // replicas > 1 on a server that is no cluster
)

// ErrTooManyReplicas is returned (wrapped, with what to do) when a stream or
// consumer asks for more replicas than the NATS servers can hold.
var ErrTooManyReplicas = errors.New("more stream replicas than NATS servers")

// explainReplicas turns JetStream's refusal of a replica count into an error
// that names the setting and what to set it to; other errors are returned
// unchanged.
func explainReplicas(err error, replicas int) error {
	var apiErr *jetstream.APIError
	if replicas <= 1 || !errors.As(err, &apiErr) {
		return err
	}
	switch apiErr.ErrorCode {
	case jsReplicasNotSupported:
		return fmt.Errorf("%w: ROSETTA_STREAM_REPLICAS=%d but the NATS server is not part of a JetStream cluster; set it to 1, or run a cluster of at least %d servers (%s)",
			ErrTooManyReplicas, replicas, replicas, apiErr.Description)
	case jsClusterNoPeers, jsInsufficientResources:
		return fmt.Errorf("%w: ROSETTA_STREAM_REPLICAS=%d but the NATS cluster has fewer JetStream servers available; set it to at most the cluster's size (3 for a three-node cluster), or add servers (%s)",
			ErrTooManyReplicas, replicas, apiErr.Description)
	}
	return err
}
