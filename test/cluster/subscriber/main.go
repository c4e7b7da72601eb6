// Command subscriber is the CloudEvents sink of the cluster end-to-end tests
// (test/cluster), run as a Deployment behind a Service: it answers every POST
// with 202 and counts deliveries by event id, and reports the counts.
//
//	POST /...     a CloudEvent (binary mode: Ce-Id; structured: the JSON id)
//	GET  /stats   {"unique":N,"duplicates":N,"total":N}
//	GET  /ids     {"<id>":<deliveries>,...}
//	GET  /healthz ok
package main

import (
	"encoding/json"
	"flag"
	"io"
	"log"
	"mime"
	"net/http"
	"sync"
	"time"
)

type counter struct {
	mu    sync.Mutex
	count map[string]int
	total int
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/healthz":
		_, _ = io.WriteString(w, "ok\n")
	case r.Method == http.MethodGet && r.URL.Path == "/stats":
		c.mu.Lock()
		s := map[string]int{"unique": len(c.count), "duplicates": c.total - len(c.count), "total": c.total}
		c.mu.Unlock()
		writeJSON(w, s)
	case r.Method == http.MethodGet && r.URL.Path == "/ids":
		c.mu.Lock()
		ids := make(map[string]int, len(c.count))
		for k, v := range c.count {
			ids[k] = v
		}
		c.mu.Unlock()
		writeJSON(w, ids)
	case r.Method == http.MethodPost:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		id := r.Header.Get("Ce-Id")
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); id == "" && ct == "application/cloudevents+json" {
			var ev struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(body, &ev)
			id = ev.ID
		}
		if id == "" {
			http.Error(w, "no CloudEvent id", http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		c.count[id]++
		c.total++
		c.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	default:
		http.Error(w, "not found", http.StatusNotFound)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func main() {
	addr := flag.String("listen", ":8080", "listen address")
	flag.Parse()
	srv := &http.Server{Addr: *addr, Handler: &counter{count: map[string]int{}}, ReadHeaderTimeout: 10 * time.Second}
	log.Printf("subscriber listening on %s", *addr)
	log.Fatal(srv.ListenAndServe())
}
