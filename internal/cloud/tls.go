package cloud

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSConfig is how the cloud's certificates are verified: against the
// system roots (nil, the default); against the PEM certificates in caFile
// only (a private CA); or, with insecure, not at all.
func TLSConfig(caFile string, insecure bool) (*tls.Config, error) {
	switch {
	case insecure && caFile != "":
		return nil, errors.New("cloud.ca_file and cloud.insecure_skip_verify: set one or the other")
	case insecure:
		// The configuration asked for it explicitly; config warns loudly.
		return &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}, nil
	case caFile != "":
		pool, err := LoadCAFile(caFile)
		if err != nil {
			return nil, err
		}
		return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}, nil
	}
	return nil, nil
}

// LoadCAFile reads a PEM bundle of CA certificates.
func LoadCAFile(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cloud.ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("cloud.ca_file %s: no PEM certificate in it", path)
	}
	return pool, nil
}

// explainTLS says what to do about a certificate the cloud presented that
// could not be verified.
func explainTLS(err error) error {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	switch {
	case errors.As(err, &ua):
		return fmt.Errorf("%w (the cloud's certificate is signed by an authority this host does not trust: set cloud.ca_file to that CA's PEM certificate)", err)
	case errors.As(err, &he):
		return fmt.Errorf("%w (the cloud's certificate is for another host name: check cloud.auth_url)", err)
	case errors.As(err, &cv):
		return fmt.Errorf("%w (the cloud's TLS certificate could not be verified: check it, or set cloud.ca_file)", err)
	}
	return err
}
