package plan_test

import (
	"strings"
	"testing"

	"github.com/herald-dev/herald/internal/certtest"
	"github.com/herald-dev/herald/plan"
)

func TestCertPool(t *testing.T) {
	a, b := certtest.CA(t, "a"), certtest.CA(t, "b")
	corrupt := certtest.Corrupt(a)
	key := "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
	tests := []struct {
		name, bundle string
		certs        int
		wantErr      string
	}{
		{"one", a, 1, ""},
		{"two with blank lines and CRLF", "\n" + a + "\r\n\r\n" + strings.ReplaceAll(b, "\n", "\r\n"), 2, ""},
		{"empty", " \n", 0, "no certificate"},
		{"text only", "hello", 0, "block 1: text where"},
		{"text between", a + "subject=CN = b\n" + b, 0, "block 2: text where"},
		{"private key", a + key, 0, "block 2 is a PRIVATE KEY, not a CERTIFICATE"},
		{"corrupt base64 before a good block", "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n" + a, 0, "block 1: not a valid PEM block"},
		{"corrupt DER", corrupt, 0, "block 1: x509:"},
		{"no end", strings.Split(a, "-----END")[0], 0, "block 1: no -----END line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, err := plan.CertPool(tt.bundle)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case tt.wantErr == "" && len(pool.Subjects()) != tt.certs:
				t.Fatalf("%d certificates, want %d", len(pool.Subjects()), tt.certs)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
