package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDevOtelPrintsSpans: herald dev --otel prints the spans of an event's
// ingress and delivery to stderr, in the producer's trace.
func TestDevOtelPrintsSpans(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	dir := t.TempDir()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	t.Cleanup(srv.Close)
	sink := srv.URL
	manifest := "apiVersion: eventing.herald.dev/v1alpha1\nkind: Topic\nmetadata:\n  name: orders\n  namespace: shop\n---\n" +
		"apiVersion: eventing.herald.dev/v1alpha1\nkind: Subscription\nmetadata:\n  name: audit\n  namespace: shop\n" +
		"spec:\n  topic: orders\n  subscriber:\n    uri: " + sink + "\n"
	if err := os.WriteFile(filepath.Join(dir, "orders.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	dev := startDev(t, dir, "--otel")
	dev.send(t, "shop/orders", "o-1")
	waitUntil(t, func() bool {
		s := dev.stderr.String()
		return strings.Contains(s, `"ingress shop/orders"`) && strings.Contains(s, `"deliver shop/audit"`)
	}, "no ingress and delivery spans on stderr")
}
