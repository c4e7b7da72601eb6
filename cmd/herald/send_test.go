package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/herald-dev/herald/devmode"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestSendToDisplay(t *testing.T) {
	var out lockedBuffer
	srv := httptest.NewServer(devmode.NewDisplay(&out, nil))
	defer srv.Close()
	c, err := parseSendFlags([]string{"--to", srv.URL, "--type", "com.example.order.created", "--source", "/cli",
		"--id", "7", "--subject", "order 7", "--data", `{"id":7}`, "-H", "tenant=acme corp", "-H", "ce-Region=eu"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	e, err := c.buildEvent(strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	code, status, _, err := send(context.Background(), http.DefaultClient, c.to, "", e)
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("send = %d %q, %v; want 202", code, status, err)
	}
	for _, want := range []string{
		"(binary mode)", "  type: com.example.order.created\n", "  source: /cli\n", "  id: 7\n",
		"  subject: order 7\n", "  datacontenttype: application/json\n",
		"  region: eu\n", "  tenant: acme corp\n", "Data,\n  {\n    \"id\": 7\n  }\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("display output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestSendFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--type", "t", "--source", "s"}, "missing --to"},
		{[]string{"--to", "http://x"}, "missing --type, --source"},
		{[]string{"--to", "http://x", "--type", "t", "--source", "s", "--data", "1", "--data-file", "f"}, "not both"},
		{[]string{"--to", "http://x", "--type", "t", "--source", "s", "--token", "a", "--token-file", "f"}, "--token or --token-file, not both"},
		{[]string{"--to", "http://x", "--type", "t", "--source", "s", "extra"}, `unexpected argument "extra"`},
		{[]string{"--to", "http://x", "--type", "t", "--source", "s", "-H", "novalue"}, `-H "novalue": want name=value`},
		{[]string{"--to", "http://x", "--type", "t", "--source", "s", "--specversion", "2.0"}, `--specversion "2.0"`},
	}
	for _, tt := range tests {
		c, err := parseSendFlags(tt.args, io.Discard)
		if err == nil {
			_, err = c.buildEvent(strings.NewReader(""))
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%v: err = %v, want %q", tt.args, err, tt.wantErr)
		}
	}
}

func TestSendReportsRefusal(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"bad"}`, http.StatusBadRequest)
	}))
	defer srv.Close()
	err := runSend(context.Background(), []string{"--to", srv.URL, "--type", "t", "--source", "/s"})
	if err == nil || !strings.Contains(err.Error(), "400 Bad Request") {
		t.Errorf("runSend = %v, want an error naming 400 Bad Request", err)
	}
}

func TestDevFlags(t *testing.T) {
	cfg, _, err := parseDevFlags([]string{"-f", "a", "--filename", "b.yaml", "--nats-listen", "random", "--listen", ":9", "--display-listen", ""}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Paths, ",") != "a,b.yaml" || cfg.NATSPort != -1 || cfg.Listen != ":9" || cfg.DisplayListen != "" || cfg.DataDir != ".herald" {
		t.Errorf("config = %+v", cfg)
	}
	for _, tt := range []struct {
		args    []string
		wantErr string
	}{
		{nil, "no manifests"},
		{[]string{"dir"}, `unexpected argument "dir"`},
		{[]string{"-f", "d", "--nats-listen", "4222"}, "want host:port"},
		{[]string{"-f", "d", "--log-level", "loud"}, "--log-level"},
	} {
		if _, _, err := parseDevFlags(tt.args, io.Discard); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%v: err = %v, want %q", tt.args, err, tt.wantErr)
		}
	}
	for in, want := range map[string]struct {
		host string
		port int
	}{
		"127.0.0.1:4222": {"127.0.0.1", 4222}, "-1": {"127.0.0.1", -1}, ":4333": {"0.0.0.0", 4333}, "localhost:0": {"localhost", -1},
	} {
		h, p, err := parseNATSListen(in)
		if err != nil || h != want.host || p != want.port {
			t.Errorf("parseNATSListen(%q) = %q, %d, %v; want %q, %d", in, h, p, err, want.host, want.port)
		}
	}
}

// --token and --token-file send the token as a bearer token; the file is
// read when the event is sent, so a rotated projected token is picked up.
func TestSendToken(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"--token", "inline"}, {"--token-file", file}, nil} {
		c, err := parseSendFlags(append([]string{"--to", srv.URL, "--type", "t", "--source", "/s"}, args...), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		e, err := c.buildEvent(strings.NewReader(""))
		if err != nil {
			t.Fatal(err)
		}
		token, err := c.bearer()
		if err != nil {
			t.Fatal(err)
		}
		if code, status, _, err := send(context.Background(), http.DefaultClient, c.to, token, e); err != nil || code != http.StatusAccepted {
			t.Fatalf("%v: send = %q, %v", args, status, err)
		}
	}
	if want := []string{"Bearer inline", "Bearer from-file", ""}; !slices.Equal(got, want) {
		t.Errorf("Authorization headers %q, want %q", got, want)
	}
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c := sendConfig{tokenFile: file}
	if _, err := c.bearer(); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty token file: err = %v", err)
	}
}

func TestParseRef(t *testing.T) {
	for _, tc := range []struct {
		arg, what, ns, name, err string
	}{
		{"orders", "topic", "default", "orders", ""},
		{"shop/orders", "topic", "shop", "orders", ""},
		{"shop/billing.v2", "subscription", "shop", "billing.v2", ""},
		{"shop/orders.v2", "topic", "", "", `"shop/orders.v2" is not [namespace/]topic`},
		{"shop/*", "topic", "", "", `"shop/*" is not [namespace/]topic`},
		{"a.b/orders", "topic", "", "", `"a.b/orders" is not [namespace/]topic`},
		{"a/b/c", "subscription", "", "", `"a/b/c" is not [namespace/]subscription`},
		{"/orders", "topic", "", "", `"/orders" is not [namespace/]topic`},
		{"shop/", "subscription", "", "", `"shop/" is not [namespace/]subscription`},
	} {
		ns, name, err := parseRef(tc.arg, tc.what)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("parseRef(%q, %s): %v, want %s", tc.arg, tc.what, err, tc.err)
			}
			continue
		}
		if err != nil || ns != tc.ns || name != tc.name {
			t.Errorf("parseRef(%q, %s) = %s, %s, %v; want %s, %s", tc.arg, tc.what, ns, name, err, tc.ns, tc.name)
		}
	}
}
