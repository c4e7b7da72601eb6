// Command subscriber is the CloudEvents sink of the cluster end-to-end tests
// (test/cluster), run as a Deployment behind a Service: it answers every POST
// with 202 and counts deliveries by event id, and reports the counts.
//
//	POST /...     a CloudEvent (binary mode: Ce-Id; structured: the JSON id)
//	GET  /stats   {"unique":N,"duplicates":N,"total":N,"refused":N}
//	GET  /ids     {"<id>":<deliveries>,...}
//	GET  /healthz ok
//
// With --audience it authenticates Herald: a POST must carry
// Authorization: Bearer with a token that a TokenReview accepts for that
// audience (and, with --subject, of that user, such as
// system:serviceaccount:<ns>:<topic>-dispatcher), or it is answered 401
// and counted in refused, not in the deliveries; when the TokenReview
// itself fails it answers 503, which Herald retries. The Pod's
// ServiceAccount then needs create on tokenreviews (the ClusterRole
// system:auth-delegator).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/client-go/rest"
)

type counter struct {
	mu      sync.Mutex
	count   map[string]int
	total   int
	refused int
	// auth, when set, checks the bearer token of every POST.
	auth *reviewer
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/healthz":
		_, _ = io.WriteString(w, "ok\n")
	case r.Method == http.MethodGet && r.URL.Path == "/stats":
		c.mu.Lock()
		s := map[string]int{"unique": len(c.count), "duplicates": c.total - len(c.count), "total": c.total, "refused": c.refused}
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
		if c.auth != nil {
			if err := c.auth.check(r); err != nil {
				var unavailable *reviewUnavailable
				if errors.As(err, &unavailable) {
					// The token could not be checked: Herald retries.
					log.Printf("cannot check a token: %v", err)
					w.Header().Set("Retry-After", "1")
					http.Error(w, err.Error(), http.StatusServiceUnavailable)
					return
				}
				c.mu.Lock()
				c.refused++
				c.mu.Unlock()
				log.Printf("refused: %v", err)
				w.Header().Set("WWW-Authenticate", "Bearer")
				http.Error(w, err.Error(), http.StatusUnauthorized)
				return
			}
		}
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

// reviewUnavailable is a token that could not be checked (the TokenReview
// API unreachable or refusing the subscriber, e.g. while its RBAC
// propagates): answered 503, which Herald retries, not 401, which would
// dead-letter the event.
type reviewUnavailable struct{ err error }

func (e *reviewUnavailable) Error() string { return e.err.Error() }
func (e *reviewUnavailable) Unwrap() error { return e.err }

// reviewer checks bearer tokens with the TokenReview API, remembering the
// tokens it accepted for a minute.
type reviewer struct {
	client   *http.Client
	url      string
	audience string
	subject  string

	mu       sync.Mutex
	accepted map[string]time.Time
}

func newReviewer(cfg *rest.Config, audience, subject string) (*reviewer, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	return &reviewer{client: hc, url: strings.TrimSuffix(cfg.Host, "/") + "/apis/authentication.k8s.io/v1/tokenreviews",
		audience: audience, subject: subject, accepted: map[string]time.Time{}}, nil
}

func (v *reviewer) check(r *http.Request) error {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return errors.New("no bearer token")
	}
	v.mu.Lock()
	until, seen := v.accepted[tok]
	v.mu.Unlock()
	if seen && time.Now().Before(until) {
		return nil
	}
	body, err := json.Marshal(&authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: tok, Audiences: []string{v.audience}}})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, v.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return &reviewUnavailable{fmt.Errorf("TokenReview: %w", err)}
	}
	defer resp.Body.Close()
	var tr authenticationv1.TokenReview
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return &reviewUnavailable{fmt.Errorf("TokenReview answered %s: %s", resp.Status, b)}
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		return &reviewUnavailable{fmt.Errorf("TokenReview: %w", err)}
	}
	switch st := tr.Status; {
	case !st.Authenticated:
		return fmt.Errorf("token refused: %s", st.Error)
	case !slices.Contains(st.Audiences, v.audience):
		return fmt.Errorf("token audiences %v lack %s", st.Audiences, v.audience)
	case v.subject != "" && st.User.Username != v.subject:
		return fmt.Errorf("token of %s, want %s", st.User.Username, v.subject)
	}
	v.mu.Lock()
	if len(v.accepted) > 10000 {
		clear(v.accepted)
	}
	v.accepted[tok] = time.Now().Add(time.Minute)
	v.mu.Unlock()
	return nil
}

func main() {
	addr := flag.String("listen", ":8080", "listen address")
	audience := flag.String("audience", "", "require a bearer token for this audience, checked with TokenReview; empty accepts every request")
	subject := flag.String("subject", "", "with --audience, require tokens of this user, e.g. system:serviceaccount:<ns>:<topic>-dispatcher")
	flag.Parse()
	c := &counter{count: map[string]int{}}
	if *audience != "" {
		cfg, err := rest.InClusterConfig()
		if err == nil {
			c.auth, err = newReviewer(cfg, *audience, *subject)
		}
		if err != nil {
			log.Fatalf("--audience: %v", err)
		}
	}
	srv := &http.Server{Addr: *addr, Handler: c, ReadHeaderTimeout: 10 * time.Second}
	log.Printf("subscriber listening on %s (audience %q, subject %q)", *addr, *audience, *subject)
	log.Fatal(srv.ListenAndServe())
}
