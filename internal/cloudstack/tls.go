package cloudstack

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"strings"

	"github.com/migratekit/ossea-operator/api/v1alpha1"
)

// tlsConfigFor trusts exactly what the spec says: the caBundle alone when one is given
// (the API documents that system roots are then not used), system roots otherwise, and no
// verification only when insecureSkipTLSVerify asks for it.
func tlsConfigFor(spec *v1alpha1.OsseaConfigSpec) (*tls.Config, error) {
	if spec.CABundle != "" && spec.InsecureSkipTLSVerify {
		return nil, newError(ErrInvalidConfig, "caBundle and insecureSkipTLSVerify are mutually exclusive")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if spec.InsecureSkipTLSVerify {
		cfg.InsecureSkipVerify = true
	}
	if spec.CABundle != "" {
		pool, err := parseCABundle(spec.CABundle)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// parseCABundle is stricter than CertPool.AppendCertsFromPEM, which skips what it cannot
// parse: a certificate that silently drops out would surface later as a puzzling
// "unknown authority".
func parseCABundle(bundle string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	rest := []byte(bundle)
	n := 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		n++
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, newError(ErrTLS, "caBundle: certificate %d does not parse: %v", n, err)
		}
		pool.AddCert(cert)
	}
	if n == 0 {
		return nil, newError(ErrTLS, "caBundle holds no PEM certificate")
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, newError(ErrTLS, "caBundle has text after its last PEM certificate that is not PEM")
	}
	return pool, nil
}
