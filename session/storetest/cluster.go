package storetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// RedisCluster is a throwaway Redis Cluster of masters without replicas,
// each a redis-server child process on a free loopback port with its own
// directory (cluster config file, and the AOF when persistent).
type RedisCluster struct {
	Addrs []string

	root    string
	persist bool
	mu      sync.Mutex
	nodes   []*exec.Cmd
}

// StartRedisCluster starts masters redis-servers with cluster mode on,
// joins them with redis-cli --cluster create (no replicas) and waits
// until every node reports cluster_state:ok. With persist, every write
// is appended and fsynced (AOF, always), so that a node killed with Kill
// keeps its data when Restart brings it back. Stop it with Stop.
func StartRedisCluster(masters int, persist bool) (*RedisCluster, error) {
	if err := needBinaries("redis-server", "redis-cli"); err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp("", "bffgate-redis-cluster-")
	if err != nil {
		return nil, err
	}
	c := &RedisCluster{root: root, persist: persist, nodes: make([]*exec.Cmd, masters)}
	for i := range masters {
		addr, err := freeAddr()
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.Addrs = append(c.Addrs, addr)
		if err := os.Mkdir(c.dir(i), 0o700); err != nil {
			c.Stop()
			return nil, err
		}
		if err := c.Restart(i); err != nil {
			c.Stop()
			return nil, err
		}
	}
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		c.Stop()
		return nil, fmt.Errorf("redis-cli --cluster create: %w: %s", err, out)
	}
	if err := c.WaitOK(); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *RedisCluster) dir(i int) string { return filepath.Join(c.root, fmt.Sprint(i)) }

// Restart starts node i again (on its address, with its cluster config
// and data) after Kill, and waits until it answers PING; WaitOK waits for
// the cluster.
func (c *RedisCluster) Restart(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nodes[i] != nil {
		return errors.New("redis cluster node already running")
	}
	args := []string{
		"--port", port(c.Addrs[i]), "--bind", "127.0.0.1", "--save", "", "--daemonize", "no",
		"--loglevel", "warning", "--dir", c.dir(i),
		"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", "2000",
	}
	if c.persist {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	cmd, err := startGroup(c.dir(i), "redis-server", args...)
	if err != nil {
		return err
	}
	if err := waitPing(c.Addrs[i]); err != nil {
		killGroup(cmd)
		return err
	}
	c.nodes[i] = cmd
	return nil
}

// Kill stops node i with SIGKILL.
func (c *RedisCluster) Kill(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	killGroup(c.nodes[i])
	c.nodes[i] = nil
}

// WaitOK waits until every node reports cluster_state:ok with all 16384
// slots assigned and reachable.
func (c *RedisCluster) WaitOK() error {
	return pollUntil(30*time.Second, "redis cluster state", func(ctx context.Context) error {
		for _, a := range c.Addrs {
			cl := directClient(a)
			s, err := cl.ClusterInfo(ctx).Result()
			cl.Close()
			if err != nil {
				return err
			}
			if !strings.Contains(s, "cluster_state:ok") || !strings.Contains(s, "cluster_slots_ok:16384") {
				return fmt.Errorf("node %s: %s", a, strings.Join(strings.Fields(s)[:3], " "))
			}
		}
		return nil
	})
}

// NodeOf returns the index of the node that serves key's slot.
func (c *RedisCluster) NodeOf(ctx context.Context, key string) (int, error) {
	cl := directClient(c.Addrs[0])
	defer cl.Close()
	slot, err := cl.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		return 0, err
	}
	slots, err := cl.ClusterSlots(ctx).Result()
	if err != nil {
		return 0, err
	}
	for _, s := range slots {
		if int64(s.Start) <= slot && slot <= int64(s.End) && len(s.Nodes) > 0 {
			for i, a := range c.Addrs {
				if s.Nodes[0].Addr == a {
					return i, nil
				}
			}
			return 0, fmt.Errorf("slot %d is served by unknown node %s", slot, s.Nodes[0].Addr)
		}
	}
	return 0, fmt.Errorf("slot %d is not served", slot)
}

// Stop kills every node (process groups) and removes their directories.
// It is idempotent.
func (c *RedisCluster) Stop() {
	for i := range c.nodes {
		c.Kill(i)
	}
	os.RemoveAll(c.root)
}

// sharedMu guards the package's shared servers, started on first use and
// stopped by MainWithRedis.
var sharedMu sync.Mutex

// sharedSet is a server set of the test binary, started on first use
// and stopped by MainWithRedis.
type sharedSet[T interface{ Stop() }] struct {
	name    string // in a failure: "redis cluster"
	ready   string // in the start-up line: "Redis Cluster of 3 masters"
	start   func() (T, error)
	done    bool // start was called
	started bool // and it worked; v is to be stopped
	v       T
	err     error
}

// get returns the set, starting it on first use. If it cannot start for
// want of a binary it skips t, unless CI=true: then t fails.
func (s *sharedSet[T]) get(t testing.TB) T {
	t.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if !s.done {
		s.done = true
		start := time.Now()
		s.v, s.err = s.start()
		if s.err == nil {
			s.started = true
			fmt.Fprintf(os.Stderr, "storetest: %s ready in %v\n", s.ready, time.Since(start).Round(time.Millisecond))
		}
	}
	if s.err != nil {
		skip, err := requireOrSkip(s.err)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		t.Skip(skip)
	}
	return s.v
}

// stop stops the set if get started it; the caller holds sharedMu.
func (s *sharedSet[T]) stop() {
	if s.started {
		s.v.Stop()
		s.started = false
		var zero T
		s.v = zero
	}
}

var sharedCluster = sharedSet[*RedisCluster]{name: "redis cluster", ready: "Redis Cluster of 3 masters",
	start: func() (*RedisCluster, error) { return StartRedisCluster(3, false) }}

// SharedCluster returns the test binary's 3-master Redis Cluster (not
// persistent), starting it on first use; MainWithRedis stops it. Tests
// sharing it use their own names: it has one database. Without
// redis-server or redis-cli it skips t, unless CI=true: then t fails.
func SharedCluster(t testing.TB) *RedisCluster {
	t.Helper()
	return sharedCluster.get(t)
}

// stopShared stops the servers SharedCluster and SharedSentinel started.
func stopShared() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	sharedCluster.stop()
	sharedSentinel.stop()
}
