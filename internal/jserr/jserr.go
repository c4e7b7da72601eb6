// Package jserr names the JetStream API error codes Herald acts on and
// classifies JetStream errors into what the caller should do about them.
// Codes nats.go already names (jetstream.JSErrCode*) are used as they are;
// the others are defined here with the nats-server constant they stand for
// (server/errors.json).
package jserr

import (
	"errors"
	"net/http"

	"github.com/nats-io/nats.go/jetstream"
)

// JetStream API error codes that nats.go does not name.
const (
	// CodeStreamInvalidConfig is nats-server's JSStreamInvalidConfigF: the
	// stream configuration is invalid.
	CodeStreamInvalidConfig jetstream.ErrorCode = 10052
	// CodeStreamUpdate is nats-server's JSStreamUpdateErrF: a change the
	// server does not apply to an existing stream, such as its storage type.
	CodeStreamUpdate jetstream.ErrorCode = 10069
	// CodeStreamReplicasNotSupported is nats-server's
	// JSStreamReplicasNotSupportedErr: more than one replica asked of a
	// server that is not clustered.
	CodeStreamReplicasNotSupported jetstream.ErrorCode = 10074
	// CodeStreamStoreFailed is nats-server's JSStreamStoreFailedF: the
	// stream's store did not take a published message. With discard new
	// that is a full stream (maximum messages, bytes or messages per
	// subject); otherwise a store being closed, which also passes.
	CodeStreamStoreFailed jetstream.ErrorCode = 10077
)

// Kind is what a JetStream error means for the caller.
type Kind int

// Kinds of JetStream errors.
const (
	// Other is any other error, a failure to reach JetStream included:
	// trying again later may succeed.
	Other Kind = iota
	// Refused is a configuration JetStream will not apply (invalid, or a
	// change it does not make to an existing stream or consumer): trying
	// again cannot help until the configuration changes.
	Refused
	// StreamFull is a publish refused because the stream holds as much as
	// its limits allow and discards new messages.
	StreamFull
	// TooLarge is a publish larger than the stream's maximum message size.
	TooLarge
	// NotFound is a stream, consumer or message that does not exist.
	NotFound
)

// Classify returns the Kind of err, which may wrap a *jetstream.APIError.
func Classify(err error) Kind {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return Other
	}
	switch apiErr.ErrorCode {
	case jetstream.JSErrCodeStreamMessageExceedsMaximum:
		return TooLarge
	case CodeStreamStoreFailed:
		return StreamFull
	case jetstream.JSErrCodeStreamNotFound, jetstream.JSErrCodeConsumerNotFound, jetstream.JSErrCodeMessageNotFound:
		return NotFound
	case CodeStreamInvalidConfig, CodeStreamUpdate, CodeStreamReplicasNotSupported:
		return Refused
	}
	if apiErr.Code == http.StatusBadRequest {
		// The server answers a request it will not carry out with 400, the
		// status of every configuration error without a code above.
		return Refused
	}
	return Other
}
