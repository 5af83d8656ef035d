package server

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// TLSConfig returns the TLS settings of the HTTPS listener: TLS 1.2 or later (Go's
// default cipher suites, forward-secret only), with the certificate chain and key read
// from certFile and keyFile (PEM). The files are read again when either changes, at the
// next handshake, so a renewed certificate (cert-manager, certbot) is served without a
// restart; a renewal that does not load is logged and the previous certificate kept.
func TLSConfig(certFile, keyFile string, log *slog.Logger) (*tls.Config, error) {
	kp := &keyPair{certFile: certFile, keyFile: keyFile, log: log}
	if err := kp.load(); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: kp.get,
	}, nil
}

type keyPair struct {
	certFile, keyFile string
	log               *slog.Logger

	mu              sync.Mutex
	cert            *tls.Certificate
	certMod, keyMod time.Time    // of the files cert was read from
	badMod          [2]time.Time // of the files that last failed to load: not retried
	lastErr         error
	logged          string // the last failure logged, so that one failure is logged once
}

func (kp *keyPair) load() error {
	cs, err := os.Stat(kp.certFile)
	if err != nil {
		return fmt.Errorf("TLS certificate: %w", err)
	}
	ks, err := os.Stat(kp.keyFile)
	if err != nil {
		return fmt.Errorf("TLS key: %w", err)
	}
	if kp.cert != nil && cs.ModTime().Equal(kp.certMod) && ks.ModTime().Equal(kp.keyMod) {
		return nil
	}
	if kp.cert != nil && cs.ModTime().Equal(kp.badMod[0]) && ks.ModTime().Equal(kp.badMod[1]) {
		return kp.lastErr // these files failed already: do not parse them per handshake
	}
	cert, err := tls.LoadX509KeyPair(kp.certFile, kp.keyFile)
	if err != nil {
		kp.badMod = [2]time.Time{cs.ModTime(), ks.ModTime()}
		kp.lastErr = fmt.Errorf("TLS certificate and key: %w", err)
		return kp.lastErr
	}
	kp.cert, kp.certMod, kp.keyMod = &cert, cs.ModTime(), ks.ModTime()
	return nil
}

// get implements tls.Config.GetCertificate. Two stats per handshake cost microseconds
// against the handshake's hundreds; connections are kept alive, so handshakes are few.
func (kp *keyPair) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	kp.mu.Lock()
	defer kp.mu.Unlock()
	if err := kp.load(); err != nil && kp.log != nil && err.Error() != kp.logged {
		// Mid-renewal (one file written, not the other) or broken: keep serving the
		// previous certificate, and say so once.
		kp.logged = err.Error()
		kp.log.Warn("TLS certificate reload failed; serving the previous one", "err", err)
	}
	return kp.cert, nil
}
