// Package nettest holds network fixtures for tests: a peer that accepts
// connections and never answers (a hung registry). Tests only.
package nettest

import (
	"net"
	"sync"
	"testing"
)

// SilentListener listens on 127.0.0.1, accepts connections and holds them
// open without reading or writing; it returns host:port. Everything is closed
// when the test ends.
func SilentListener(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never read nor written
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}
