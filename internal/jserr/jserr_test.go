package jserr

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	api := func(status int, code jetstream.ErrorCode) error {
		return fmt.Errorf("publish: %w", &jetstream.APIError{Code: status, ErrorCode: code, Description: "any text"})
	}
	tests := []struct {
		name string
		err  error
		want Kind
	}{
		{"too large", api(400, jetstream.JSErrCodeStreamMessageExceedsMaximum), TooLarge},
		{"store failed", api(503, CodeStreamStoreFailed), StreamFull},
		{"stream not found", jetstream.ErrStreamNotFound, NotFound},
		{"consumer not found", fmt.Errorf("get: %w", jetstream.ErrConsumerNotFound), NotFound},
		{"invalid config", api(500, CodeStreamInvalidConfig), Refused},
		{"update refused", api(500, CodeStreamUpdate), Refused},
		{"replicas", api(500, CodeStreamReplicasNotSupported), Refused},
		{"subjects overlap (400)", api(400, 10065), Refused},
		{"server error", api(500, 10999), Other},
		{"no API error", errors.New("nats: timeout"), Other},
		{"nil", nil, Other},
	}
	for _, tc := range tests {
		if got := Classify(tc.err); got != tc.want {
			t.Errorf("%s: Classify = %v, want %v", tc.name, got, tc.want)
		}
	}
}
