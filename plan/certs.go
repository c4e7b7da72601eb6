package plan

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// CertPool parses a bundle of PEM certificates, as a Destination's caCerts
// holds them, into a pool holding exactly those certificates. The bundle
// must hold at least one CERTIFICATE block, every block must be a
// certificate that parses, and nothing but whitespace may stand before,
// between or after the blocks; any other bundle is an error saying which
// block is wrong, counting from 1.
func CertPool(bundle string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	rest := strings.TrimSpace(bundle)
	if rest == "" {
		return nil, errors.New("no certificate: want one or more PEM CERTIFICATE blocks")
	}
	for n := 1; rest != ""; n++ {
		block, next, err := nextBlock(rest)
		if err != nil {
			return nil, fmt.Errorf("block %d: %w", n, err)
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("block %d is a %s, not a CERTIFICATE", n, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("block %d: %w", n, err)
		}
		pool.AddCert(c)
		rest = strings.TrimSpace(next)
	}
	return pool, nil
}

// nextBlock decodes the PEM block s starts with. pem.Decode skips text and
// corrupt blocks to find a later block; nextBlock decodes one block alone,
// so that neither goes unnoticed.
func nextBlock(s string) (*pem.Block, string, error) {
	if !strings.HasPrefix(s, "-----BEGIN ") {
		return nil, "", errors.New("text where a -----BEGIN CERTIFICATE----- line belongs")
	}
	end := strings.Index(s, "-----END ")
	if end < 0 {
		return nil, "", errors.New("no -----END line")
	}
	lineEnd := strings.Index(s[end+len("-----END "):], "-----")
	if lineEnd < 0 {
		return nil, "", errors.New("unterminated -----END line")
	}
	lineEnd += end + len("-----END ") + len("-----")
	chunk := s[:lineEnd]
	if strings.Count(chunk, "-----BEGIN ") != 1 {
		return nil, "", errors.New("a -----BEGIN line without its -----END line")
	}
	b, trailing := pem.Decode([]byte(chunk))
	if b == nil || strings.TrimSpace(string(trailing)) != "" {
		return nil, "", errors.New("not a valid PEM block (check its base64 and its BEGIN and END lines)")
	}
	return b, s[lineEnd:], nil
}
