package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"

	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/session/storetest"
)

// TestReplicasShareClientToken (issue 16 item 3): two replicas on one
// Redis, an API with token = "client", anonymous calls through both at
// once while the IdP holds the grant: the IdP sees one
// client_credentials grant, and the API one token from both replicas.
func TestReplicasShareClientToken(t *testing.T) {
	storetest.SkipWithoutRedis(t, redisSrv, redisSkip)
	op := testop.New(t, testop.Config{})
	var mu sync.Mutex
	seen := map[string]int{}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Header.Get("Authorization")]++
		mu.Unlock()
		w.Write([]byte(`{}`))
	}))
	t.Cleanup(api.Close)
	var replicas []*replica
	for range 2 {
		r := newReplica(t, replicaOpts{redisURL: redisSrv.URL(7), op: op, api: api.URL})
		f, err := os.OpenFile(r.config, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "  [[apps.apis]]\n  path = \"/capi/\"\n  upstream = %q\n  token = \"client\"\n  client_scopes = [\"api:read\"]\n", api.URL)
		f.Close()
		r.start(t)
		replicas = append(replicas, r)
	}
	held, release := op.HoldClientCredentials()
	var wg sync.WaitGroup
	codes := make([]int, 20)
	for i := range codes {
		r := replicas[i%2]
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, r.public+"/capi/x", nil)
			req.Header.Set("X-CSRF", "1")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			res.Body.Close()
			codes[i] = res.StatusCode
		})
	}
	<-held
	release()
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Errorf("call %d through replica %d: status %d, want 200", i, i%2, c)
		}
	}
	if n := op.ClientCredentialsCount(); n != 1 {
		t.Errorf("client_credentials grants for two replicas = %d, want 1", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 {
		t.Errorf("the API saw %d different Authorization values, want the one client token: %v", len(seen), len(seen))
	}
}
