package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/plan"
)

const contractManifests = `apiVersion: v1
kind: ConfigMap
metadata:
  name: schemas
data:
  order.yaml: |
    type: object
    required: [order]
    properties:
      order:
        type: object
        properties:
          qty: {type: integer, minimum: 1}
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata:
  name: orders
spec:
  contract: enforce
  eventTypes:
  - type: com.example.order.created
    schemaFrom:
      configMapKeyRef: {name: schemas, key: order.yaml}
`

// TestDevContract: herald dev reads a contract schema from a ConfigMap in
// its manifests and enforces it as the operator's dispatchers do.
func TestDevContract(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "orders.yaml"), []byte(contractManifests), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDev(t, dir)
	post := func(id, typ, data string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+d.listen+"/default/orders", strings.NewReader(data))
		for k, v := range map[string]string{"ce-specversion": "1.0", "ce-type": typ, "ce-source": "/shop",
			"ce-id": id, "content-type": "application/json"} {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := post("1", "com.example.order.created", `{"order":{"qty":2}}`); st != http.StatusAccepted {
		t.Fatalf("valid event: %d %s", st, body)
	}
	st, body := post("2", "com.example.order.created", `{"order":{"qty":0}}`)
	if st != http.StatusBadRequest || !strings.Contains(body, `"error":"/order/qty: must be >= 1"`) {
		t.Fatalf("invalid event: %d %s, want 400 naming /order/qty", st, body)
	}
	if st, body := post("3", "com.example.order.cancelled", `{}`); st != http.StatusBadRequest || !strings.Contains(body, `"attribute":"type"`) {
		t.Fatalf("undeclared type: %d %s, want 400 naming the type", st, body)
	}
}

// TestDevTypes: herald types prints the event types herald dev accepted,
// with their counts, from the catalog its dispatcher keeps.
func TestDevTypes(t *testing.T) {
	dir := t.TempDir()
	manifest := "apiVersion: eventing.herald.dev/v1alpha1\nkind: Topic\nmetadata:\n  name: mixed\n"
	if err := os.WriteFile(filepath.Join(dir, "mixed.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	natsAddr := freeLocalAddr(t)
	d := startDev(t, dir, "--nats-listen", natsAddr)
	for i, typ := range []string{"a.created", "a.created", "b.updated", "c.deleted", "a.created"} {
		d.sendWith(t, "default/mixed", map[string]string{"ce-type": typ, "ce-source": "/app", "ce-id": fmt.Sprint(i)})
	}
	env := natsEnv(natsAddr)
	var entries []plan.CatalogEntry
	deadline := time.Now().Add(3 * plan.CatalogFlush)
	for {
		var out bytes.Buffer
		err := runTypes(context.Background(), []string{"default/mixed", "-o", "json"}, env, &out)
		if err == nil && json.Unmarshal(out.Bytes(), &entries) == nil && len(entries) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("herald types: %v %s", err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	counts := map[string]int64{}
	for _, e := range entries {
		counts[e.Type] = e.Count
	}
	if counts["a.created"] != 3 || counts["b.updated"] != 1 || counts["c.deleted"] != 1 {
		t.Errorf("counts %v", counts)
	}
	var out bytes.Buffer
	if err := runTypes(context.Background(), []string{"mixed"}, env, &out); err != nil || !strings.Contains(out.String(), "TYPE") || !strings.Contains(out.String(), "a.created") {
		t.Errorf("table: %v\n%s", err, out.String())
	}
	t.Logf("herald types mixed:\n%s", out.String())
}
