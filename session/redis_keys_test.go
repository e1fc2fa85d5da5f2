package session_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bffgate/bffgate/session"
	"github.com/bffgate/bffgate/session/storetest"
)

// keysDB is the database TestRedisScriptsDeclareKeys watches; no other
// test uses it.
const keysDB = 13

// TestRedisScriptsDeclareKeys runs every store operation on one server
// while MONITOR records what Redis executes, and checks that each key a
// script touched (the commands marked "lua", their keys found with
// COMMAND GETKEYS) was passed in the script's KEYS. A Cluster routes a
// script by its KEYS, so a key built from ARGV breaks there even when it
// works on one server.
func TestRedisScriptsDeclareKeys(t *testing.T) {
	storetest.SkipWithoutRedis(t, redisSrv, redisSkip)
	ctx := context.Background()
	rdb, err := session.NewRedisClient(session.Config{RedisURL: redisSrv.URL(keysDB)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	st := newRedisStore(t, rdb, session.RedisConfig{})
	mon := startMonitor(t)

	// An app of this run: tombstones of an earlier run (-count) stay.
	app, iss := "keys-app-"+session.NewID()[:8], "https://idp.example/keys"
	step := 0
	mark := func() {
		step++
		if err := rdb.Echo(ctx, fmt.Sprintf("bffgate-step-%d", step)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	newSession := func(sub, sid string) *session.Session {
		s := &session.Session{ID: session.NewID(), App: app, Issuer: iss, Subject: sub, SID: sid, AccessToken: "a", RefreshToken: "r"}
		if err := st.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		mark()
		return s
	}
	a, b := newSession("alice", "sid-1"), newSession("alice", "")
	newSession("bob", "sid-2")
	newSession("bob", "sid-2")
	e := newSession("carol", "sid-3")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		mark()
	}
	must(st.Touch(ctx, a.ID, time.Now()))
	b.AccessToken = "a2"
	must(st.Update(ctx, b))
	_, err = st.Get(ctx, a.ID)
	must(err)
	must(st.MarkUpstream(ctx, a.ID, "orders"))
	_, swapped, err := st.ReplaceTokens(ctx, a.ID, "r", session.Tokens{AccessToken: "a3", RefreshToken: "r3", Expiry: time.Now().Add(time.Minute)})
	if !swapped {
		t.Fatal("ReplaceTokens did not swap")
	}
	must(err)
	_, err = st.Count(ctx, app)
	must(err)
	_, err = st.ClaimRefresh(ctx, a.ID, time.Minute)
	must(err)
	must(st.ReleaseRefresh(ctx, a.ID))
	_, err = st.List(ctx, session.Filter{Subject: "alice"})
	must(err)
	_, err = st.Delete(ctx, e.ID)
	must(err)
	_, err = st.Delete(ctx, e.ID) // gone
	if err != session.ErrNotFound {
		t.Fatalf("second delete: %v", err)
	}
	mark()
	_, err = st.RevokeSID(ctx, app, iss, "sid-2", "bob", time.Now())
	must(err)
	_, err = st.RevokeSub(ctx, app, iss, "alice", time.Now())
	must(err)

	segments := mon.stop(t, fmt.Sprintf("bffgate-step-%d", step))
	checked := 0
	for _, seg := range segments {
		declared := map[string]bool{}
		for _, cmd := range seg.scripts {
			n, _ := strconv.Atoi(cmd[2])
			for _, k := range cmd[3 : 3+n] {
				declared[k] = true
			}
		}
		for _, cmd := range seg.lua {
			for _, k := range commandKeys(ctx, t, rdb, cmd) {
				checked++
				if !declared[k] {
					t.Errorf("%s: a script ran %s on %q, which is not in its KEYS %q", seg.name, cmd[0], k, keysOf(declared))
				}
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d keys touched by scripts were seen: is MONITOR working?", checked)
	}
}

func keysOf(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// commandKeys returns the keys of a command, by COMMAND GETKEYS.
func commandKeys(ctx context.Context, t *testing.T, rdb redis.UniversalClient, cmd []string) []string {
	t.Helper()
	args := []any{"COMMAND", "GETKEYS"}
	for _, a := range cmd {
		args = append(args, a)
	}
	keys, err := rdb.Do(ctx, args...).StringSlice()
	if err != nil && strings.Contains(err.Error(), "no key arguments") {
		return nil
	}
	if err != nil {
		t.Fatalf("COMMAND GETKEYS %q: %v", cmd, err)
	}
	return keys
}

// monitor reads a MONITOR connection on the package's server.
type monitor struct {
	conn  net.Conn
	lines chan string
}

// segment is what ran in keysDB between two step marks.
type segment struct {
	name    string
	scripts [][]string // EVAL and EVALSHA calls
	lua     [][]string // commands scripts ran
}

func startMonitor(t *testing.T) *monitor {
	t.Helper()
	conn, err := net.Dial("tcp", redisSrv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); conn.Close() })
	m := &monitor{conn: conn, lines: make(chan string, 1024)}
	r := bufio.NewReader(conn)
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		t.Fatal(err)
	}
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "+OK") {
		t.Fatalf("MONITOR: %q %v", l, err)
	}
	go func() {
		defer close(m.lines)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return
			}
			select {
			case m.lines <- strings.TrimRight(l, "\r\n"):
			case <-done:
				return
			}
		}
	}()
	return m
}

// stop reads until the ECHO of last, and splits what ran in keysDB into
// segments at the step marks.
func (m *monitor) stop(t *testing.T, last string) []segment {
	t.Helper()
	var out []segment
	cur := segment{name: "step 1"}
	timeout := time.After(10 * time.Second)
	for {
		var l string
		select {
		case line, ok := <-m.lines:
			if !ok {
				t.Fatal("MONITOR connection closed")
			}
			l = line
		case <-timeout:
			t.Fatalf("MONITOR: no %q within 10s", last)
		}
		// 1795956358.904763 [13 lua] "SET" "k1" "a\x00b"
		_, rest, _ := strings.Cut(l, " [")
		src, rest, _ := strings.Cut(rest, "] ")
		if !strings.HasPrefix(src, strconv.Itoa(keysDB)+" ") {
			continue
		}
		args, err := unquoteMonitor(rest)
		if err != nil || len(args) == 0 {
			t.Fatalf("MONITOR line %q: %v", l, err)
		}
		name := strings.ToUpper(args[0])
		switch {
		case strings.HasSuffix(src, " lua"):
			cur.lua = append(cur.lua, args)
		case name == "EVAL" || name == "EVALSHA":
			cur.scripts = append(cur.scripts, args)
		case name == "ECHO" && len(args) == 2 && strings.HasPrefix(args[1], "bffgate-step-"):
			out = append(out, cur)
			if args[1] == last {
				return out
			}
			cur = segment{name: "after " + args[1]}
		}
	}
}

// unquoteMonitor splits MONITOR's "a" "b\x00c" argument list.
func unquoteMonitor(s string) ([]string, error) {
	var out []string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		if s[0] != '"' {
			return nil, fmt.Errorf("want a quote at %q", s)
		}
		var b strings.Builder
		i := 1
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] != '\\' {
				b.WriteByte(s[i])
				continue
			}
			i++
			if i >= len(s) {
				return nil, fmt.Errorf("dangling escape in %q", s)
			}
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'a':
				b.WriteByte('\a')
			case 'b':
				b.WriteByte('\b')
			case 'x':
				if i+2 >= len(s) {
					return nil, fmt.Errorf("short \\x escape in %q", s)
				}
				v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
				if err != nil {
					return nil, err
				}
				b.WriteByte(byte(v))
				i += 2
			default:
				b.WriteByte(s[i])
			}
		}
		if i >= len(s) {
			return nil, fmt.Errorf("unterminated argument in %q", s)
		}
		out = append(out, b.String())
		s = s[i+1:]
	}
	return out, nil
}
