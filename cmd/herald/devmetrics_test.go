package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDevMetrics: herald dev --metrics-listen serves the data plane's
// metrics as a dispatcher's metrics port does, so the dashboard's queries
// work against a laptop.
func TestDevMetrics(t *testing.T) {
	dir := t.TempDir()
	manifest := `apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata:
  name: orders
`
	if err := os.WriteFile(filepath.Join(dir, "orders.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	metrics := freeLocalAddr(t)
	dev := startDev(t, dir, "--metrics-listen", metrics)
	dev.send(t, "default/orders", "order-1")
	dev.send(t, "default/orders", "order-2")
	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	if want := `herald_events_received_total{namespace="default",topic="orders"} 2`; !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks %s:\n%s", want, body)
	}
}
