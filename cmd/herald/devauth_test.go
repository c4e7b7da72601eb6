package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/plan"
)

// TestDevAuth: herald dev --auth keeps its issuer's key in the data
// directory and says how to get a token; herald dev token prints a token
// of that issuer for the ServiceAccount and the Topic named, which the
// ingress accepts.
func TestDevAuth(t *testing.T) {
	dir, data := t.TempDir(), t.TempDir()
	manifest := "apiVersion: eventing.herald.dev/v1alpha1\nkind: Topic\nmetadata:\n  name: orders\n  namespace: shop\n"
	if err := os.WriteFile(filepath.Join(dir, "orders.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	dev := startDev(t, dir, "--data-dir", data, "--auth")
	if !strings.Contains(dev.stderr.String(), "authentication on") || !strings.Contains(dev.stderr.String(), "herald dev token") {
		t.Fatalf("no authentication line in the banner:\n%s", dev.stderr.String())
	}
	// The banner's example request carries a token the policy admits.
	if want := `-H "Authorization: Bearer $(herald dev token shop/default --topic shop/orders --data-dir ` + data + `)"`; !strings.Contains(dev.stderr.String(), want) {
		t.Errorf("the banner's curl example lacks %s:\n%s", want, dev.stderr.String())
	}
	if _, err := os.Stat(filepath.Join(data, devAuthDir, "issuer-key.pem")); err != nil {
		t.Fatalf("issuer key: %v", err)
	}

	var out, errOut bytes.Buffer
	// Flags after the ServiceAccount, as with kubectl create token.
	if err := devMain(context.Background(), []string{"token", "shop/checkout", "--topic", "shop/orders", "--data-dir", data, "--ttl", "10m"}, &out, &errOut); err != nil {
		t.Fatalf("herald dev token: %v\n%s", err, errOut.String())
	}
	tok := strings.TrimSpace(out.String())
	iss, err := devIssuerFor(data)
	if err != nil {
		t.Fatal(err)
	}
	id, err := iss.Verifier().Verify(t.Context(), tok, plan.TopicAudience("shop", "orders"))
	if err != nil || id.Subject != "system:serviceaccount:shop:checkout" || time.Until(id.Expiry) > 10*time.Minute {
		t.Fatalf("token verifies as %+v, %v", id, err)
	}

	req, _ := http.NewRequest(http.MethodPost, "http://"+dev.listen+"/shop/orders", strings.NewReader(`{}`))
	for k, v := range map[string]string{"ce-specversion": "1.0", "ce-type": "com.example.order.created", "ce-source": "/shop",
		"ce-id": "a1", "content-type": "application/json", "Authorization": "Bearer " + tok} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST with the token: %s", resp.Status)
	}
}

func TestDevTokenArguments(t *testing.T) {
	data := t.TempDir()
	for _, c := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"token", "--data-dir", data}, "name one ServiceAccount"},
		{[]string{"token", "a", "b", "--data-dir", data, "--audience", "x"}, "name one ServiceAccount"},
		{[]string{"token", "a", "--data-dir", data}, "--topic"},
		{[]string{"token", "a", "--data-dir", data, "--topic", "t", "--audience", "x"}, "exclude each other"},
		{[]string{"token", "a/b/c", "--data-dir", data, "--audience", "x"}, "is not [namespace/]serviceaccount"},
		{[]string{"token", "a", "--data-dir", data, "--audience", "x", "--ttl", "0s"}, "--ttl"},
		{[]string{"token", "--audience", "x", "--data-dir", data, "a"}, ""},
	} {
		var out, errOut bytes.Buffer
		err := devMain(context.Background(), c.args, &out, &errOut)
		switch {
		case c.wantErr == "" && (err != nil || strings.Count(out.String(), ".") != 2):
			t.Errorf("%q: %v, printed %q", c.args, err, out.String())
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%q: error %v, want %q", c.args, err, c.wantErr)
		}
	}
}
