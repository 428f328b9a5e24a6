package contracts

import (
	"strconv"
	"time"
)

// ConfigKind names the entity a config event is about.
type ConfigKind string

const (
	KindSource      ConfigKind = "source"
	KindDestination ConfigKind = "destination"
	KindPipeline    ConfigKind = "pipeline"
)

// ConfigAction says what happened to the entity.
type ConfigAction string

const (
	ActionCreated ConfigAction = "created"
	ActionUpdated ConfigAction = "updated"
	ActionDeleted ConfigAction = "deleted"
	ActionStarted ConfigAction = "started"
	ActionPaused  ConfigAction = "paused"
)

// ConfigEvent is published on rosetta.config.<kind>.<id> after every
// committed config change. It is a notification, not the state: services
// re-read the config DB when they receive one (and on start and on a timer),
// so a lost or duplicated event never leaves them in the wrong state.
type ConfigEvent struct {
	Kind   ConfigKind   `json:"kind"`
	ID     int64        `json:"id"`
	Action ConfigAction `json:"action"`
	At     time.Time    `json:"at"`
}

// Subject is the subject the event is published on.
func (e ConfigEvent) Subject() string {
	return ConfigPrefix + "." + string(e.Kind) + "." + strconv.FormatInt(e.ID, 10)
}
