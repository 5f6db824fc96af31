package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"
)

// frontMain serves the simulator over TLS, where Go negotiates HTTP/2 as
// xAI's API does. The simulator itself speaks HTTP/1.1 only, so a gateway
// in front of it holds one upstream connection (and file descriptor, and
// pair of transport goroutines) per open stream; over HTTP/2 its streams
// share a few connections. The capacity phase measures grokgate both ways.
// The certificate is self-signed for 127.0.0.1 and written to --cert, for
// the gateway to trust through SSL_CERT_FILE.
func frontMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, addr, upstream := serverFlags("front", "plain HTTP origin to serve, such as http://127.0.0.1:8081", stderr)
	certOut := fs.String("cert", "", "file to write the PEM certificate to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*upstream)
	if err != nil || u.Host == "" || *certOut == "" {
		return errors.New("--upstream must be an http origin and --cert a file")
	}
	cert, pemBytes, err := selfSigned()
	if err != nil {
		return err
	}
	if err := os.WriteFile(*certOut, pemBytes, 0o644); err != nil {
		return err
	}
	tr := poolTransport()
	tr.MaxIdleConnsPerHost = 1 << 16                       // one upstream connection per open stream
	rp := bufferedProxy(u, tr, log.New(io.Discard, "", 0)) // streams cut at the end of a phase are expected
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}},
		ErrorLog:  log.New(stderr, "front: ", log.LstdFlags)}
	fmt.Fprintf(stdout, "front listening on https://%s\n", ln.Addr())
	return serveUntil(ctx, srv, func() error { return srv.ServeTLS(ln, "", "") })
}

// selfSigned makes a certificate for 127.0.0.1 that is its own CA.
func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}
