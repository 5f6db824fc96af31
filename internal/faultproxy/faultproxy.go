// Package faultproxy is a TCP proxy that tests put between grokgate and
// PostgreSQL or Redis to refuse, hang or cut the connections on command, so
// fault handling is tested against the real driver and the real server.
package faultproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// Mode is what the proxy does with connections.
type Mode int

const (
	// Pass forwards bytes both ways.
	Pass Mode = iota
	// Refuse closes the listening socket, so new connections are refused
	// (ECONNREFUSED), and cuts the open ones.
	Refuse
	// Hang keeps connections open and accepts new ones but moves no byte,
	// as a database that stopped answering does; Pass resumes them.
	Hang
)

// Proxy forwards one local address to a target address.
type Proxy struct {
	target string
	addr   string

	mu    sync.Mutex
	mode  Mode
	ln    net.Listener // nil while refusing
	conns map[net.Conn]struct{}
	gate  chan struct{} // closed while bytes may move; replaced on Hang
	done  bool
	wg    sync.WaitGroup
}

// Start listens on a free local port forwarding to target and stops when
// the test ends.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("faultproxy: listen: %v", err)
	}
	p := &Proxy{target: target, addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}, gate: make(chan struct{})}
	close(p.gate)
	p.serve(ln)
	t.Cleanup(p.Close)
	return p
}

// Addr is the host:port to connect to instead of the target.
func (p *Proxy) Addr() string { return p.addr }

// Mode reports the current mode.
func (p *Proxy) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Set switches the mode. Leaving Refuse listens again on the same port.
func (p *Proxy) Set(m Mode) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done || m == p.mode {
		return nil
	}
	prev := p.mode
	p.mode = m
	switch m {
	case Refuse:
		p.ln.Close()
		p.ln = nil
		p.cutLocked()
		p.openGateLocked()
	case Hang:
		p.gate = make(chan struct{})
	case Pass:
		p.openGateLocked()
	}
	if prev == Refuse {
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			return err
		}
		p.serve(ln)
	}
	return nil
}

// Cut closes every open connection (a reset network path); the mode stays.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutLocked()
}

// Conns reports how many client connections are open.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns) / 2
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.done = true
	if p.ln != nil {
		p.ln.Close()
	}
	p.cutLocked()
	p.openGateLocked()
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) openGateLocked() {
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
}

func (p *Proxy) cutLocked() {
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// serve accepts on ln until it is closed; called with p.mu held or before
// the proxy is shared.
func (p *Proxy) serve(ln net.Listener) {
	p.ln = ln
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go p.handle(c)
		}
	}()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done || p.mode == Refuse {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) currentGate() chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gate
}

func (p *Proxy) handle(client net.Conn) {
	defer p.wg.Done()
	if !p.track(client) {
		return
	}
	// A hanging proxy accepts but does not reach the server until it passes.
	<-p.currentGate()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	if !p.track(server) {
		client.Close()
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(server, client) }()
	go func() { defer wg.Done(); p.pipe(client, server) }()
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, server)
	p.mu.Unlock()
}

// pipe copies src to dst, holding each chunk while the proxy hangs.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			<-p.currentGate()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			return
		}
	}
}
