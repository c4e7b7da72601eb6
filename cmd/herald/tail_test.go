package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/internal/cli"
	"github.com/herald-dev/herald/internal/natstest"
	"github.com/herald-dev/herald/plan"
)

func TestParseTailConfig(t *testing.T) {
	env := func(string) string { return "" }
	for _, tc := range []struct {
		args    []string
		ns, top string
		wantErr string
	}{
		{[]string{"orders"}, "default", "orders", ""},
		{[]string{"--from", "earliest", "shop/orders"}, "shop", "orders", ""},
		{[]string{"--from", "2026-01-02T15:04:05Z", "shop/orders"}, "shop", "orders", ""},
		{[]string{"--from", "yesterday", "orders"}, "", "", "want new, earliest or an RFC 3339 time"},
		{[]string{}, "", "", "name one Topic"},
		{[]string{"a/b/c"}, "", "", "is not [namespace/]topic"},
	} {
		c, err := parseTailConfig(tc.args, env)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: err = %v, want %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil || c.Namespace != tc.ns || c.Topic != tc.top {
			t.Errorf("%v: %+v, %v", tc.args, c, err)
		}
	}
}

// herald tail prints what a Topic holds, attributes decoded once, without
// touching its Subscriptions.
func TestTailPrintsStoredEvents(t *testing.T) {
	s := natstest.Start(t)
	js, err := jetstream.New(natstest.Connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cfg, err := compiler.StreamConfig(&v1alpha1.Topic{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders-dlq"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg(plan.Subject("shop", "orders-dlq"))
	for k, v := range map[string]string{
		"ce-specversion": "1.0", "ce-id": "42", "ce-source": "/shop", "ce-type": "com.example.order.created",
		"ce-knativeerrorcode": "500", "ce-subject": "caf%C3%A9", "Content-Type": "application/json",
	} {
		msg.Header.Set(k, v)
	}
	msg.Data = []byte(`{"order":42}`)
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := runTail(tctx, tailConfig{toolNATS: toolNATS{cli.NATSConfig{NATSURL: s.ClientURL()}}, Namespace: "shop", Topic: "orders-dlq", From: "earliest", Count: 1}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"id: 42", "type: com.example.order.created", "knativeerrorcode: 500", "subject: café", `"order": 42`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	err = runTail(tctx, tailConfig{toolNATS: toolNATS{cli.NATSConfig{NATSURL: s.ClientURL()}}, Namespace: "shop", Topic: "missing", From: "new", Count: 1}, &out)
	if err == nil || !strings.Contains(err.Error(), "topic shop/missing has no stream") {
		t.Errorf("missing topic: err = %v", err)
	}
}

// TestToolNATSPassword logs a tool in with --nats-user and
// --nats-password-file, and reports a missing password file before
// connecting.
func TestToolNATSPassword(t *testing.T) {
	opts := &server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true,
		Users: []*server.User{{Username: "herald-manager", Password: "s3cret"}}}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	file := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ok := toolNATS{cli.NATSConfig{NATSURL: s.ClientURL(), NATSUser: "herald-manager", NATSPasswordFile: file}}
	nc, _, err := ok.connect("test")
	if err != nil {
		t.Fatalf("log in with the password file: %v", err)
	}
	nc.Close()
	if _, _, err := (toolNATS{cli.NATSConfig{NATSURL: s.ClientURL()}}).connect("test"); err == nil {
		t.Error("connected without the password")
	}
	missing := toolNATS{cli.NATSConfig{NATSURL: s.ClientURL(), NATSUser: "herald-manager", NATSPasswordFile: file + ".gone"}}
	if _, _, err := missing.connect("test"); err == nil || !strings.Contains(err.Error(), "--nats-password-file") {
		t.Errorf("missing password file: %v", err)
	}
}
