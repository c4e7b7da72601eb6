package dispatcher

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// rawPost writes an HTTP/1.1 POST byte for byte, as a client that ignores
// every rule of the HTTP binding would, and returns the answer.
func rawPost(t *testing.T, baseURL, path string, headerLines []string, body string) (int, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(baseURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var b strings.Builder
	b.WriteString("POST " + path + " HTTP/1.1\r\nHost: herald\r\nConnection: close\r\n")
	for _, l := range headerLines {
		b.WriteString(l + "\r\n")
	}
	b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// TestIngressHostileHeaders: attribute values that are not Unicode text and
// attributes given twice are refused with 400 naming the attribute, and
// nothing is stored.
func TestIngressHostileHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.provision(newTopic("hostile"), nil, nil)
	r := e.start(nil, Options{})
	r.waitDelivering(t, &res.Plan)
	base := []string{"ce-specversion: 1.0", "ce-type: t"}
	structured := []string{"Content-Type: application/cloudevents+json"}
	batched := []string{"Content-Type: application/cloudevents-batch+json"}
	const data = `{"a":1}`
	tests := []struct {
		name      string
		lines     []string
		body      string
		attribute string
	}{
		{"source not UTF-8", append([]string{"ce-id: 1", "ce-source: /\xff\xfe"}, base...), data, "source"},
		{"source percent-encoded not UTF-8", append([]string{"ce-id: 2", "ce-source: /%FF%FE"}, base...), data, "source"},
		{"extension not UTF-8", append([]string{"ce-id: 3", "ce-source: /s", "ce-color: r\xe9d"}, base...), data, "color"},
		{"id twice", append([]string{"ce-id: a", "ce-id: b", "ce-source: /s"}, base...), data, "id"},
		{"id twice in other case", append([]string{"ce-id: a", "CE-ID: b", "ce-source: /s"}, base...), data, "id"},
		{"specversion twice", []string{"ce-specversion: 1.0", "ce-specversion: 1.0", "ce-id: 4", "ce-source: /s", "ce-type: t"}, data, "specversion"},
		{"extension twice", append([]string{"ce-id: 5", "ce-source: /s", "ce-color: red", "ce-color: blue"}, base...), data, "color"},
		{"structured source not UTF-8", structured, "{\"specversion\":\"1.0\",\"id\":\"6\",\"source\":\"/\xff\xfe\",\"type\":\"t\"}", "source"},
		{"batched extension not UTF-8", batched, "[{\"specversion\":\"1.0\",\"id\":\"7\",\"source\":\"/s\",\"type\":\"t\",\"color\":\"r\xe9d\"}]", "color"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := rawPost(t, r.url, "/default/hostile", tc.lines, tc.body)
			if status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400; body %s", status, body)
			}
			var eb errorBody
			if err := json.Unmarshal(body, &eb); err != nil {
				t.Fatalf("error body %q: %v", body, err)
			}
			if eb.Attribute != tc.attribute {
				t.Errorf("attribute = %q, want %q (%s)", eb.Attribute, tc.attribute, eb.Error)
			}
		})
	}
	if got := e.streamMsgs(res.Plan.Stream); got != 0 {
		t.Errorf("stream holds %d messages, want 0", got)
	}
	status, body := rawPost(t, r.url, "/default/hostile", append([]string{"ce-id: ok", "ce-source: /caf%C3%A9"}, base...), `{}`)
	if status != http.StatusAccepted {
		t.Fatalf("a percent-encoded UTF-8 source: status %d (%s), want 202", status, body)
	}
}
