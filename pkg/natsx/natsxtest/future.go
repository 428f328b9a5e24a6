// Package natsxtest holds what tests of natsx's users share: a publish
// future resolved by hand, for the queues that settle acknowledgements
// (natsx.Acks, capture's ack tracker) without a server.
package natsxtest

import "github.com/nats-io/nats.go/jetstream"

// Future is a natsx.AckFuture the test resolves with Ack or Fail; real
// JetStream futures are exercised by the tests against a server.
type Future struct {
	ok  chan *jetstream.PubAck
	err chan error
}

// NewFuture returns an unresolved future.
func NewFuture() *Future {
	return &Future{ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
}

func (f *Future) Ok() <-chan *jetstream.PubAck { return f.ok }
func (f *Future) Err() <-chan error            { return f.err }

// Ack acknowledges the publish (once; a second Ack blocks until the
// first is taken).
func (f *Future) Ack() { f.ok <- &jetstream.PubAck{} }

// AckWith acknowledges the publish with ack.
func (f *Future) AckWith(ack *jetstream.PubAck) { f.ok <- ack }

// Fail fails the publish with err.
func (f *Future) Fail(err error) { f.err <- err }
