package dispatcher

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"net/http"

	"github.com/herald-dev/herald/plan"
)

// clientFor returns the client for requests to a destination whose caCerts
// are bundle: the dispatcher's client for "", else a client trusting exactly
// the bundle's certificates (the system roots are not added), built once per
// distinct bundle and shared by every destination that names it. It is a
// copy of the dispatcher's client, so redirects, timeouts and keep-alive
// behave alike. A bundle that plan.CertPool refuses is an error.
func (d *Dispatcher) clientFor(bundle string) (*http.Client, error) {
	if bundle == "" {
		return d.client, nil
	}
	key := sha256.Sum256([]byte(bundle))
	d.clientsMu.Lock()
	defer d.clientsMu.Unlock()
	if c, ok := d.clients[key]; ok {
		return c, nil
	}
	pool, err := plan.CertPool(bundle)
	if err != nil {
		return nil, err
	}
	c := *d.client
	c.Transport = transportTrusting(d.client.Transport, pool)
	d.clients[key] = &c
	return &c, nil
}

// transportTrusting returns a copy of base, the transport of the
// dispatcher's client, whose TLS configuration trusts only roots. A base
// that is no *http.Transport cannot be copied; the copy is then made of the
// default client's transport (nil stands for http.DefaultTransport).
func transportTrusting(base http.RoundTripper, roots *x509.CertPool) *http.Transport {
	var t *http.Transport
	switch bt := base.(type) {
	case *http.Transport:
		t = bt.Clone()
	case nil:
		t = http.DefaultTransport.(*http.Transport).Clone()
	default:
		t = defaultHTTPClient().Transport.(*http.Transport)
	}
	if t.TLSClientConfig == nil {
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	t.TLSClientConfig.RootCAs = roots
	return t
}

// pruneClients drops the clients of bundles no delivery loop uses any more
// and closes their idle connections; loops still finishing with one keep
// using it. d.mu must be held.
func (d *Dispatcher) pruneClients() {
	used := map[*http.Client]bool{}
	for _, r := range d.runners {
		cfg := r.cfg.Load()
		used[cfg.subscriberClient], used[cfg.replyClient], used[cfg.deadLetterClient] = true, true, true
	}
	d.clientsMu.Lock()
	defer d.clientsMu.Unlock()
	for key, c := range d.clients {
		if !used[c] {
			delete(d.clients, key)
			c.CloseIdleConnections()
		}
	}
}
