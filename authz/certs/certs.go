package certs

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
)

// Files names one listener's TLS material.
type Files struct {
	// CertFile is the PEM certificate chain the listener presents (leaf
	// first); KeyFile its PEM private key.
	CertFile, KeyFile string
	// ClientCAFile, when set, turns on mTLS: every client must present a
	// certificate that chains to one of the PEM certificates in it.
	ClientCAFile string
	// MinVersion is the lowest TLS version accepted; below tls.VersionTLS12
	// (or 0) means tls.VersionTLS12.
	MinVersion uint16
}

// Paths are the files a reload re-reads.
func (f Files) Paths() []string {
	out := []string{f.CertFile, f.KeyFile}
	if f.ClientCAFile != "" {
		out = append(out, f.ClientCAFile)
	}
	return out
}

// Error is a problem with one file of a listener's TLS material. Field is
// the config key that names the file (cert_file, key_file, client_ca_file).
type Error struct {
	Field, File string
	Err         error
}

func (e *Error) Error() string { return fmt.Sprintf("%s %s: %v", e.Field, e.File, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// ErrKeyMismatch is wrapped by an *Error on key_file when the key is not
// the private key of the certificate.
var ErrKeyMismatch = errors.New("private key does not match the certificate in cert_file")

// material is one immutable load of the files.
type material struct {
	cert    tls.Certificate
	clients *x509.CertPool // nil: no client certificates asked for
}

// Source serves a listener's current TLS material. It is safe for
// concurrent use.
type Source struct {
	files Files
	cur   atomic.Pointer[material]
}

// Load reads and checks the files and returns a Source serving them.
func Load(f Files) (*Source, error) {
	m, err := load(f)
	if err != nil {
		return nil, err
	}
	s := &Source{files: f}
	s.cur.Store(m)
	return s, nil
}

// Check reads and checks the files without keeping them (config validation).
func Check(f Files) error {
	_, err := load(f)
	return err
}

// Files returns the files the source reads.
func (s *Source) Files() Files { return s.files }

// Reload re-reads the files and, when they are all valid, serves them to
// new handshakes; on failure the last good material keeps serving and the
// error says why.
func (s *Source) Reload() error {
	m, err := load(s.files)
	if err != nil {
		return err
	}
	s.cur.Store(m)
	return nil
}

// Leaf returns the certificate currently served.
func (s *Source) Leaf() *x509.Certificate { return s.cur.Load().cert.Leaf }

// ServerConfig returns a server tls.Config whose every handshake reads the
// current material. Connections already established keep the material they
// were negotiated with.
func (s *Source) ServerConfig() *tls.Config {
	minVersion := max(s.files.MinVersion, tls.VersionTLS12)
	return &tls.Config{
		MinVersion: minVersion,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := s.cur.Load()
			c := &tls.Config{
				MinVersion:   minVersion,
				Certificates: []tls.Certificate{m.cert},
			}
			if m.clients != nil {
				c.ClientAuth = tls.RequireAndVerifyClientCert
				c.ClientCAs = m.clients
				// A resumed session is not verified again against the
				// current CA bundle: without tickets, removing a CA from
				// client_ca_file shuts out its clients on their next
				// connection. (Check connections are long-lived; a full
				// handshake per connection costs little.)
				c.SessionTicketsDisabled = true
			}
			return c, nil
		},
	}
}

func load(f Files) (*material, error) {
	certPEM, err := os.ReadFile(f.CertFile)
	if err != nil {
		return nil, &Error{"cert_file", f.CertFile, unwrapPath(err)}
	}
	keyPEM, err := os.ReadFile(f.KeyFile)
	if err != nil {
		return nil, &Error{"key_file", f.KeyFile, unwrapPath(err)}
	}
	if !hasBlock(certPEM, "CERTIFICATE") {
		return nil, &Error{"cert_file", f.CertFile, errors.New("no PEM CERTIFICATE block")}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		if hasKey(keyPEM) {
			// tls reports a mismatch and a malformed certificate alike;
			// tell them apart for the operator.
			if _, perr := x509.ParseCertificate(firstBlock(certPEM, "CERTIFICATE")); perr != nil {
				return nil, &Error{"cert_file", f.CertFile, perr}
			}
			return nil, &Error{"key_file", f.KeyFile, fmt.Errorf("%w: %v", ErrKeyMismatch, err)}
		}
		return nil, &Error{"key_file", f.KeyFile, errors.New("no PEM private key block")}
	}
	m := &material{cert: cert}
	if f.ClientCAFile != "" {
		caPEM, err := os.ReadFile(f.ClientCAFile)
		if err != nil {
			return nil, &Error{"client_ca_file", f.ClientCAFile, unwrapPath(err)}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, &Error{"client_ca_file", f.ClientCAFile, errors.New("holds no PEM certificate")}
		}
		m.clients = pool
	}
	return m, nil
}

// unwrapPath drops the path an *os.PathError repeats (Error already names
// the file).
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func hasBlock(data []byte, typ string) bool { return firstBlock(data, typ) != nil }

func firstBlock(data []byte, typ string) []byte {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil
		}
		if b.Type == typ {
			return b.Bytes
		}
	}
}

func hasKey(data []byte) bool {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return false
		}
		if b.Type == "PRIVATE KEY" || b.Type == "RSA PRIVATE KEY" || b.Type == "EC PRIVATE KEY" {
			return true
		}
	}
}
