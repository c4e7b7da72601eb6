// Package ce is Herald's CloudEvents wire format, in one place for the
// dispatcher, the sources and herald dev:
//
//   - the HTTP binding (CloudEvents HTTP Protocol Binding 1.0.2): ce- header
//     keys, percent-encoding of their values (§3.1.3.2: encoded on the way
//     out, decoded once on the way in, each escape on its own), and the
//     binary, structured and batched content modes (§3.1, §3.2, §3.3);
//   - what a valid event is (CloudEvents 1.0 and 0.3): every attribute holds
//     one value, and every value is UTF-8 text; a ce- header given twice is
//     refused rather than joined;
//   - the stored message format, an event as one JetStream message;
//   - the retry rules of the Knative data-plane spec ("Retries"): which
//     statuses are retried, Retry-After (RFC 9110 §10.2.3), and the backoff
//     between attempts.
//
// It imports no other Herald package.
package ce
