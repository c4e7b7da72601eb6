package dispatchercmd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/certtest"
)

// selfSigned is a certificate for localhost and 127.0.0.1 signed by its own
// key, in PEM, and the pool that trusts it.
type selfSigned struct {
	cert            *x509.Certificate
	certPEM, keyPEM []byte
	pool            *x509.CertPool
}

func newSelfSigned(t *testing.T, name string) selfSigned {
	t.Helper()
	cert, certPEM, keyPEM := certtest.SelfSigned(t, name)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return selfSigned{cert: cert, certPEM: certPEM, keyPEM: keyPEM, pool: pool}
}

// secretDir lays out tls.crt and tls.key as the kubelet mounts a Secret:
// links to ..data/<key>, ..data a link to a directory per version, swapped
// by a rename when the Secret changes.
type secretDir string

func (d secretDir) certFile() string { return filepath.Join(string(d), "tls.crt") }
func (d secretDir) keyFile() string  { return filepath.Join(string(d), "tls.key") }

// write puts a new version of the files in place atomically.
func (d secretDir) write(t *testing.T, version string, certPEM, keyPEM []byte) {
	t.Helper()
	dir := filepath.Join(string(d), "..v"+version)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(string(d), "..data_tmp")
	if err := os.Symlink(filepath.Base(dir), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(string(d), "..data")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tls.crt", "tls.key"} {
		link := filepath.Join(string(d), name)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
			t.Fatal(err)
		}
	}
}

// servedCert opens a new TLS connection to addr and returns the leaf
// certificate the server presented.
func servedCert(t *testing.T, addr string) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test compares the certificate itself
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// serveTLS serves certs on a local listener for the test's duration and
// returns its address.
func serveTLS(t *testing.T, certs *keyPairReloader) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ingressTLSConfig(certs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.(*tls.Conn).Handshake()
			}()
		}
	}()
	return ln.Addr().String()
}

// TestKeyPairReloader replaces the files of a served key pair: a new
// connection sees the new certificate once the check interval allows a look,
// and a pair that does not load leaves the previous one in service.
func TestKeyPairReloader(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	first, second, third := newSelfSigned(t, "first"), newSelfSigned(t, "second"), newSelfSigned(t, "third")

	t.Run("a look at most once per interval", func(t *testing.T) {
		dir := secretDir(t.TempDir())
		dir.write(t, "1", first.certPEM, first.keyPEM)
		certs, err := newKeyPairReloader(dir.certFile(), dir.keyFile(), time.Hour, log)
		if err != nil {
			t.Fatal(err)
		}
		addr := serveTLS(t, certs)
		dir.write(t, "2", second.certPEM, second.keyPEM)
		if got := servedCert(t, addr); !got.Equal(first.cert) {
			t.Errorf("served %s before the interval passed, want first", got.Subject.CommonName)
		}
	})

	t.Run("renewal and a broken pair", func(t *testing.T) {
		dir := secretDir(t.TempDir())
		dir.write(t, "1", first.certPEM, first.keyPEM)
		certs, err := newKeyPairReloader(dir.certFile(), dir.keyFile(), 0, log)
		if err != nil {
			t.Fatal(err)
		}
		addr := serveTLS(t, certs)
		if got := servedCert(t, addr); !got.Equal(first.cert) {
			t.Fatalf("served %s, want first", got.Subject.CommonName)
		}
		dir.write(t, "2", second.certPEM, second.keyPEM)
		if got := servedCert(t, addr); !got.Equal(second.cert) {
			t.Fatalf("served %s after the renewal, want second", got.Subject.CommonName)
		}
		// A certificate with another pair's key does not load.
		dir.write(t, "3", third.certPEM, first.keyPEM)
		if got := servedCert(t, addr); !got.Equal(second.cert) {
			t.Fatalf("served %s after a mismatched pair, want second", got.Subject.CommonName)
		}
		dir.write(t, "4", third.certPEM, third.keyPEM)
		if got := servedCert(t, addr); !got.Equal(third.cert) {
			t.Fatalf("served %s after the repair, want third", got.Subject.CommonName)
		}
	})

	t.Run("a pair that does not load at start", func(t *testing.T) {
		dir := secretDir(t.TempDir())
		dir.write(t, "1", first.certPEM, second.keyPEM)
		if _, err := newKeyPairReloader(dir.certFile(), dir.keyFile(), 0, log); err == nil || !strings.Contains(err.Error(), "load ingress key pair") {
			t.Errorf("error %v, want a key pair that does not load", err)
		}
		if _, err := newKeyPairReloader(filepath.Join(string(dir), "missing.crt"), dir.keyFile(), 0, log); err == nil {
			t.Error("a missing certificate file loaded")
		}
	})
}

// TestRunDispatcherTLS starts herald dispatcher with --tls-cert-file and
// --tls-key-file against an embedded NATS: the ingress accepts an event
// over HTTPS, refuses plain HTTP and TLS below 1.2, serves a renewed
// certificate on new connections without a restart, and metrics stay plain
// HTTP.
func TestRunDispatcherTLS(t *testing.T) {
	srv, stream := natsWithTopic(t)
	ctx := context.Background()
	first, second := newSelfSigned(t, "first"), newSelfSigned(t, "second")
	dir := secretDir(t.TempDir())
	dir.write(t, "1", first.certPEM, first.keyPEM)

	listen, metricsListen := freeAddr(t), freeAddr(t)
	t.Setenv("NATS_URL", srv.ClientURL())
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Run(runCtx, []string{"--topics", "shop/orders", "--listen", listen, "--metrics-listen", metricsListen,
			"--log-level", "error", "--drain-delay", "0s", "--tls-cert-file", dir.certFile(), "--tls-key-file", dir.keyFile()})
	}()
	trusting := func(pool *x509.CertPool) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
	}
	client := trusting(first.pool)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get("https://" + listen + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("dispatcher not ready over https: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	post := func(c *http.Client, url, id string) (int, error) {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("{}"))
		for k, v := range map[string]string{"Ce-Specversion": "1.0", "Ce-Id": id, "Ce-Source": "/t", "Ce-Type": "t", "Content-Type": "application/json"} {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	stored := func() uint64 {
		t.Helper()
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}

	if code, err := post(client, "https://"+listen+"/shop/orders", "tls-1"); err != nil || code != http.StatusAccepted {
		t.Fatalf("https POST: %d %v, want 202", code, err)
	}
	if n := stored(); n != 1 {
		t.Fatalf("%d events stored after the https POST, want 1", n)
	}
	if code, err := post(http.DefaultClient, "http://"+listen+"/shop/orders", "plain-1"); err == nil && code != http.StatusBadRequest {
		t.Errorf("plain http POST: %d, want 400 or a refused connection", code)
	}
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: first.pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}}} //nolint:gosec // a client below the ingress's minimum
	if code, err := post(old, "https://"+listen+"/shop/orders", "tls11-1"); err == nil {
		t.Errorf("a TLS 1.1 client was answered %d", code)
	}
	if n := stored(); n != 1 {
		t.Errorf("%d events stored after refused requests, want 1", n)
	}
	resp, err := http.Get("http://" + metricsListen + "/healthz")
	if err != nil {
		t.Fatalf("plain http /healthz on the metrics port: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz on the metrics port: %d", resp.StatusCode)
	}

	// The kubelet swaps the files of a renewed Secret; new connections get
	// the new certificate once the dispatcher looks again.
	dir.write(t, "2", second.certPEM, second.keyPEM)
	client = trusting(second.pool)
	deadline = time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		code, err := post(client, "https://"+listen+"/shop/orders", fmt.Sprintf("renewed-%d", i))
		if err == nil && code == http.StatusAccepted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the renewed certificate was not served: %d %v", code, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dispatcher did not shut down")
	}
}
