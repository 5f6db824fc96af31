package faultproxy

import (
	"bufio"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

// echoServer answers each line with the same line.
func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					c.Write([]byte(l))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, wait time.Duration) (string, error) {
	c.SetDeadline(time.Now().Add(wait))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

func TestModes(t *testing.T) {
	p := Start(t, echoServer(t))
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := roundTrip(c, 2*time.Second); err != nil || got != "ping\n" {
		t.Fatalf("pass: %q, %v", got, err)
	}

	p.Set(Hang)
	if got, err := roundTrip(c, 200*time.Millisecond); err == nil {
		t.Fatalf("hang: got %q, want a timeout", got)
	}
	// New connections are accepted while hanging, but not answered.
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatalf("hang: dial: %v", err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(5 * time.Second))
	c2.Write([]byte("two\n"))
	p.Set(Pass)
	if l, err := bufio.NewReader(c2).ReadString('\n'); err != nil || l != "two\n" {
		t.Fatalf("after hang: %q, %v", l, err)
	}

	p.Set(Refuse)
	if _, err := net.Dial("tcp", p.Addr()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("refuse: dial err %v, want connection refused", err)
	}
	if _, err := roundTrip(c2, time.Second); err == nil {
		t.Fatal("refuse: an open connection still works")
	}
	if err := p.Set(Pass); err != nil {
		t.Fatal(err)
	}
	c3, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatalf("pass again: %v", err)
	}
	defer c3.Close()
	if got, err := roundTrip(c3, 2*time.Second); err != nil || got != "ping\n" {
		t.Fatalf("pass again: %q, %v", got, err)
	}
	p.Cut()
	if _, err := roundTrip(c3, time.Second); err == nil {
		t.Fatal("cut: the connection still works")
	}
}
