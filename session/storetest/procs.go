package storetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// A missing Redis binary: the helpers that start servers return an error
// wrapping ErrNoRedis, so that a test skips (or fails with CI=true).
func needBinaries(names ...string) error {
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			return fmt.Errorf("%w: %s", ErrNoRedis, n)
		}
	}
	return nil
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// startGroup starts name in a process group of its own, so that
// killGroup stops it and anything it forked.
func startGroup(dir, name string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return cmd, nil
}

// killGroup SIGKILLs cmd's process group (an outage, not a clean
// shutdown) and reaps cmd. nil is a no-op.
func killGroup(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	cmd.Wait()
}

// pollUntil calls cond every 20 ms until it returns nil or d passes; it
// returns cond's last error then.
func pollUntil(d time.Duration, what string, cond func(ctx context.Context) error) error {
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := cond(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v: %w", what, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// directClient is a plain client on one server, without retries, for the
// harness's own checks.
func directClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second, DisableIdentity: true})
}

// info returns field of the INFO section of the server at addr.
func info(ctx context.Context, addr, section, field string) (string, error) {
	c := directClient(addr)
	defer c.Close()
	s, err := c.Info(ctx, section).Result()
	if err != nil {
		return "", err
	}
	for l := range strings.SplitSeq(s, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), field+":"); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("no %s in INFO %s", field, section)
}

// waitPing waits until the server at addr answers PING.
func waitPing(addr string) error {
	return pollUntil(10*time.Second, "redis on "+addr, func(ctx context.Context) error {
		c := directClient(addr)
		defer c.Close()
		return c.Ping(ctx).Err()
	})
}

// requireOrSkip turns a missing binary into a skip reason outside CI.
func requireOrSkip(err error) (skip string, _ error) {
	if errors.Is(err, ErrNoRedis) && os.Getenv("CI") != "true" {
		return err.Error() + " (set CI=true to make this a failure)", nil
	}
	return "", err
}
