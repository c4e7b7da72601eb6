package ce

// Extensions Herald adds to a dead-lettered event. The knative* names and
// meanings follow Knative Eventing so existing tooling reads them.
const (
	// ExtErrorDest is the URI of the destination that failed (the
	// subscriber, or the reply destination when forwarding a reply failed).
	ExtErrorDest = "knativeerrordest"
	// ExtErrorCode is the HTTP status of the last attempt; absent when the
	// last attempt got no response.
	ExtErrorCode = "knativeerrorcode"
	// ExtErrorData is the start of the last response's body, or of the
	// transport error's text when there was no response, base64-encoded as
	// Knative does.
	ExtErrorData = "knativeerrordata"
	// ExtAttempts is the number of attempts made, in decimal.
	ExtAttempts = "heraldattempts"
	// ExtSubscription is the Subscription that failed the event,
	// "namespace/name".
	ExtSubscription = "heraldsubscription"
	// ExtTopic is the Topic the event was delivered from, "namespace/name".
	ExtTopic = "heraldtopic"
	// ExtDeadLetteredAt is when the event was given up on, RFC 3339 (UTC).
	ExtDeadLetteredAt = "heralddeadletteredat"
)

// DeadLetterExtensions are the extensions a dead letter carries besides the
// original event's: a redriven event goes out without them.
var DeadLetterExtensions = []string{
	ExtErrorDest, ExtErrorCode, ExtErrorData, ExtAttempts, ExtSubscription, ExtTopic, ExtDeadLetteredAt,
}
