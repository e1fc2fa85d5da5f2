package storetest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// RedisServer is a throwaway redis-server child process for tests of the
// Redis-backed stores: no persistence, on a free loopback port.
type RedisServer struct {
	Addr string
	// Dir, if set, makes the server persist every write there (AOF,
	// fsync always), so that a restart after Stop keeps the data.
	Dir string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// ErrNoRedis means redis-server is not installed.
var ErrNoRedis = errors.New("redis-server not found in PATH")

// StartRedis starts a redis-server on a free port and waits until it
// answers. Stop it with Stop.
func StartRedis() (*RedisServer, error) { return StartRedisIn("") }

// StartRedisIn is StartRedis with the data persisted in dir (see
// RedisServer.Dir); "" persists nothing.
func StartRedisIn(dir string) (*RedisServer, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, ErrNoRedis
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &RedisServer{Addr: addr, Dir: dir}
	return s, s.Start()
}

// Start starts the server again on its address after Stop.
func (s *RedisServer) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("redis-server already running")
	}
	_, port, _ := net.SplitHostPort(s.Addr)
	args := []string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--daemonize", "no", "--loglevel", "warning"}
	if s.Dir != "" {
		args = append(args, "--dir", s.Dir, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	cmd := exec.Command("redis-server", args...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Write([]byte("PING\r\n"))
			buf := make([]byte, 16)
			c.SetReadDeadline(time.Now().Add(time.Second))
			n, _ := c.Read(buf)
			c.Close()
			if strings.HasPrefix(string(buf[:n]), "+PONG") {
				s.cmd = cmd
				return nil
			}
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			return fmt.Errorf("redis-server on %s did not answer", s.Addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server (SIGKILL: an outage, not a clean shutdown) and
// waits for it to exit. It is safe to call when stopped.
func (s *RedisServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

// URL returns redis://Addr/db.
func (s *RedisServer) URL(db int) string {
	return "redis://" + s.Addr + "/" + strconv.Itoa(db)
}

// RequireRedis starts a server for a test package's TestMain. Without
// redis-server it returns nil and a reason to skip, unless the CI
// environment variable is "true": then a missing redis-server is a
// failure (the returned error).
func RequireRedis() (srv *RedisServer, skip string, err error) {
	srv, err = StartRedis()
	switch {
	case errors.Is(err, ErrNoRedis) && os.Getenv("CI") != "true":
		return nil, "redis-server is not installed (set CI=true to make this a failure)", nil
	case err != nil:
		return nil, "", err
	}
	return srv, "", nil
}

// RedisForTest starts a redis-server for one test (RequireRedis: skipped
// without one, a failure under CI=true) and stops it when the test ends.
func RedisForTest(t testing.TB) *RedisServer {
	t.Helper()
	srv, skip, err := RequireRedis()
	if err != nil {
		t.Fatal(err)
	}
	SkipWithoutRedis(t, srv, skip)
	t.Cleanup(srv.Stop)
	return srv
}

// SkipWithoutRedis skips t when srv is nil, giving the reason.
func SkipWithoutRedis(t testing.TB, srv *RedisServer, reason string) {
	t.Helper()
	if srv == nil {
		t.Skip(reason)
	}
}

// MainWithRedis is a TestMain body for packages whose tests share one
// redis-server: it starts it (see RequireRedis), hands it (or the reason
// to skip) to set, runs the tests, stops it and the Cluster and Sentinel
// set that SharedCluster and SharedSentinel started, and returns the exit
// code.
func MainWithRedis(m *testing.M, set func(srv *RedisServer, skip string)) int {
	defer stopShared()
	srv, skip, err := RequireRedis()
	if err != nil {
		fmt.Fprintln(os.Stderr, "redis:", err)
		return 1
	}
	if srv != nil {
		defer srv.Stop()
	}
	set(srv, skip)
	return m.Run()
}
