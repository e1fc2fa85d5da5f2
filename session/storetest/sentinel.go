package storetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the master name RedisSentinel monitors.
const SentinelMaster = "bffgate-test"

// RedisSentinel is a throwaway Sentinel set: a master, one replica and
// three redis-sentinel processes (quorum 2), each a child process on a
// free loopback port. A master down for a second is failed over.
type RedisSentinel struct {
	Sentinels []string // addresses of the Sentinels

	root  string
	mu    sync.Mutex
	procs map[string]*exec.Cmd // by address
}

// StartRedisSentinel starts the set and waits until every Sentinel knows
// the replica and the other Sentinels, so that a failover can start. Stop
// it with Stop.
func StartRedisSentinel() (*RedisSentinel, error) {
	if err := needBinaries("redis-server", "redis-sentinel"); err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp("", "bffgate-redis-sentinel-")
	if err != nil {
		return nil, err
	}
	s := &RedisSentinel{root: root, procs: map[string]*exec.Cmd{}}
	master, err := s.startServer()
	if err != nil {
		s.Stop()
		return nil, err
	}
	replica, err := s.startServer("--replicaof", "127.0.0.1", port(master))
	if err != nil {
		s.Stop()
		return nil, err
	}
	if err := pollUntil(10*time.Second, "replica in sync", func(ctx context.Context) error {
		if v, err := info(ctx, replica, "replication", "master_link_status"); err != nil || v != "up" {
			return fmt.Errorf("master_link_status %q: %v", v, err)
		}
		return nil
	}); err != nil {
		s.Stop()
		return nil, err
	}
	// Each Sentinel is told of the replica and of the others up front (as
	// its rewritten config would after discovery), rather than finding
	// them through INFO and hello messages over several seconds.
	ids := make([]string, 3)
	for i := range ids {
		ids[i] = fmt.Sprintf("%040x", i+1)
		addr, err := freeAddr()
		if err != nil {
			s.Stop()
			return nil, err
		}
		s.Sentinels = append(s.Sentinels, addr)
	}
	for i := range ids {
		if err := s.startSentinel(i, ids, master, replica); err != nil {
			s.Stop()
			return nil, err
		}
	}
	if err := pollUntil(20*time.Second, "sentinels ready", func(ctx context.Context) error {
		for _, a := range s.Sentinels {
			sc := redis.NewSentinelClient(&redis.Options{Addr: a, MaxRetries: -1})
			m, err := sc.Master(ctx, SentinelMaster).Result()
			sc.Close()
			if err != nil {
				return err
			}
			if m["num-slaves"] != "1" || m["num-other-sentinels"] != "2" {
				return fmt.Errorf("sentinel %s: %s replicas, %s other sentinels", a, m["num-slaves"], m["num-other-sentinels"])
			}
		}
		return nil
	}); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *RedisSentinel) startServer(extra ...string) (string, error) {
	addr, err := freeAddr()
	if err != nil {
		return "", err
	}
	args := append([]string{"--port", port(addr), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--loglevel", "warning", "--repl-diskless-sync-delay", "0"}, extra...)
	cmd, err := startGroup(s.root, "redis-server", args...)
	if err != nil {
		return "", err
	}
	s.procs[addr] = cmd
	return addr, waitPing(addr)
}

func (s *RedisSentinel) startSentinel(i int, ids []string, master, replica string) error {
	addr := s.Sentinels[i]
	dir := filepath.Join(s.root, "sentinel-"+strconv.Itoa(i))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	conf := filepath.Join(dir, "sentinel.conf")
	body := fmt.Sprintf(`port %s
bind 127.0.0.1
daemonize no
loglevel warning
dir %s
sentinel monitor %s 127.0.0.1 %s 2
sentinel down-after-milliseconds %s 1000
sentinel failover-timeout %s 10000
sentinel parallel-syncs %s 1
sentinel myid %s
sentinel known-replica %s 127.0.0.1 %s
`, port(addr), dir, SentinelMaster, port(master), SentinelMaster, SentinelMaster, SentinelMaster,
		ids[i], SentinelMaster, port(replica))
	for j, other := range s.Sentinels {
		if j != i {
			body += fmt.Sprintf("sentinel known-sentinel %s 127.0.0.1 %s %s\n", SentinelMaster, port(other), ids[j])
		}
	}
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return err
	}
	cmd, err := startGroup(dir, "redis-sentinel", conf)
	if err != nil {
		return err
	}
	s.procs[addr] = cmd
	return waitPing(addr)
}

// Master returns the address of the master the Sentinels name now.
func (s *RedisSentinel) Master(ctx context.Context) (string, error) {
	var errs []error
	for _, a := range s.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: a, MaxRetries: -1})
		hp, err := sc.GetMasterAddrByName(ctx, SentinelMaster).Result()
		sc.Close()
		if err == nil && len(hp) == 2 {
			return net.JoinHostPort(hp[0], hp[1]), nil
		}
		errs = append(errs, err)
	}
	return "", fmt.Errorf("no sentinel names a master: %w", errors.Join(errs...))
}

// KillMaster SIGKILLs the current master and returns its address.
func (s *RedisSentinel) KillMaster(ctx context.Context) (string, error) {
	m, err := s.Master(ctx)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd, ok := s.procs[m]
	if !ok {
		return "", fmt.Errorf("the master %s is not one of ours", m)
	}
	killGroup(cmd)
	delete(s.procs, m)
	return m, nil
}

// WaitFailover waits until the Sentinels name a master other than old and
// that server says it is a master.
func (s *RedisSentinel) WaitFailover(old string, d time.Duration) (string, error) {
	var now string
	err := pollUntil(d, "failover", func(ctx context.Context) error {
		m, err := s.Master(ctx)
		if err != nil {
			return err
		}
		if m == old {
			return errors.New("the Sentinels still name the old master")
		}
		if role, err := info(ctx, m, "replication", "role"); err != nil || role != "master" {
			return fmt.Errorf("%s has role %q: %v", m, role, err)
		}
		now = m
		return nil
	})
	return now, err
}

// Stop kills every process (process groups) and removes their
// directories. It is idempotent.
func (s *RedisSentinel) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for a, cmd := range s.procs {
		killGroup(cmd)
		delete(s.procs, a)
	}
	os.RemoveAll(s.root)
}

// NewRedisSentinel starts a Sentinel set for t alone (for a test that
// fails it over: the next run of the test needs a replica again) and
// stops it when t ends. Without redis-server or redis-sentinel it skips
// t, unless CI=true: then t fails.
func NewRedisSentinel(t testing.TB) *RedisSentinel {
	t.Helper()
	s, err := StartRedisSentinel()
	if err != nil {
		skip, err := requireOrSkip(err)
		if err != nil {
			t.Fatalf("redis sentinel: %v", err)
		}
		t.Skip(skip)
	}
	t.Cleanup(s.Stop)
	return s
}

var sharedSentinel = sharedSet[*RedisSentinel]{name: "redis sentinel", ready: "Redis Sentinel set", start: StartRedisSentinel}

// SharedSentinel returns the test binary's Sentinel set, starting it on
// first use; MainWithRedis stops it. A test that fails a set over uses
// its own (NewRedisSentinel). Without
// redis-server or redis-sentinel it skips t, unless CI=true: then t
// fails.
func SharedSentinel(t testing.TB) *RedisSentinel {
	t.Helper()
	return sharedSentinel.get(t)
}
