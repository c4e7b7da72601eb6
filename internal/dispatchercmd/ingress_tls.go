package dispatchercmd

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ingressCertCheckInterval is how often at most the ingress looks at its
// certificate files for a renewal. The kubelet refreshes a mounted Secret
// within about a minute of its change, so a few seconds more do not matter.
const ingressCertCheckInterval = 5 * time.Second

// fileStamp identifies a version of a file by what os.Stat reports through
// symbolic links: the file itself, its modification time and size. The
// kubelet renews a mounted Secret by swapping a link to a directory of new
// files, so a renewal is a different file even within the clock's
// granularity.
type fileStamp struct {
	info os.FileInfo
}

func (s fileStamp) equal(o fileStamp) bool {
	if s.info == nil || o.info == nil {
		return s.info == o.info
	}
	return os.SameFile(s.info, o.info) && s.info.ModTime().Equal(o.info.ModTime()) && s.info.Size() == o.info.Size()
}

// keyPairReloader serves a certificate and private key read from two PEM
// files, and loads them again when either file changed (another file, its
// modification time or size), looking at most once per interval, during a
// TLS handshake. A pair that does not load (a half-written renewal, a key
// that does not match) leaves the previous pair in service and is tried
// again at the next look.
type keyPairReloader struct {
	certFile, keyFile string
	interval          time.Duration
	log               *slog.Logger

	cert atomic.Pointer[tls.Certificate]

	mu      sync.Mutex // guards the fields below; held by one look at a time
	stamps  [2]fileStamp
	checked time.Time
}

// newKeyPairReloader loads the pair once and fails if it does not load.
func newKeyPairReloader(certFile, keyFile string, interval time.Duration, log *slog.Logger) (*keyPairReloader, error) {
	r := &keyPairReloader{certFile: certFile, keyFile: keyFile, interval: interval, log: log}
	stamps, err := r.stat()
	if err != nil {
		return nil, err
	}
	if err := r.load(stamps); err != nil {
		return nil, err
	}
	r.checked = time.Now()
	return r, nil
}

// GetCertificate implements tls.Config.GetCertificate. It never fails once
// a pair is loaded: a handshake that arrives while another one looks at the
// files is served the pair in service.
func (r *keyPairReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if r.mu.TryLock() {
		if now := time.Now(); now.Sub(r.checked) >= r.interval {
			r.checked = now
			r.reloadIfChanged()
		}
		r.mu.Unlock()
	}
	return r.cert.Load(), nil
}

// reloadIfChanged loads the pair when the files changed since the last load.
// Called with mu held.
func (r *keyPairReloader) reloadIfChanged() {
	stamps, err := r.stat()
	if err != nil {
		r.log.Warn("ingress certificate files unreadable; serving the previous certificate", "error", err)
		return
	}
	if stamps[0].equal(r.stamps[0]) && stamps[1].equal(r.stamps[1]) {
		return
	}
	if err := r.load(stamps); err != nil {
		r.log.Warn("ingress certificate did not load; serving the previous certificate", "error", err)
		return
	}
	leaf := r.cert.Load().Leaf
	r.log.Info("ingress certificate reloaded", "subject", leaf.Subject.String(), "notAfter", leaf.NotAfter)
}

// load reads the pair and puts it in service, remembering stamps as the
// files' version. Called with mu held, or before r is shared.
func (r *keyPairReloader) load(stamps [2]fileStamp) error {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("load ingress key pair: %w", err)
	}
	r.cert.Store(&cert)
	r.stamps = stamps
	return nil
}

func (r *keyPairReloader) stat() ([2]fileStamp, error) {
	var stamps [2]fileStamp
	for i, name := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(name)
		if err != nil {
			return stamps, fmt.Errorf("stat ingress key pair: %w", err)
		}
		stamps[i] = fileStamp{info: fi}
	}
	return stamps, nil
}

// ingressTLSConfig is the ingress's TLS configuration: TLS 1.2 or later,
// with the certificate certs serves.
func ingressTLSConfig(certs *keyPairReloader) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.GetCertificate}
}
