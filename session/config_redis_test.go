package session_test

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/bffgate/bffgate/session"
)

// TestRedisConfigKinds checks which client each way of naming Redis gets,
// and the errors of the combinations that make no sense.
func TestRedisConfigKinds(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	for _, tt := range []struct {
		name    string
		cfg     session.Config
		want    string // client type, or "" for a config error
		wantErr string
	}{
		{name: "url", cfg: session.Config{RedisURL: "redis://127.0.0.1:1/2"}, want: "*redis.Client"},
		{name: "one addr", cfg: session.Config{RedisAddrs: []string{"127.0.0.1:1"}, RedisDB: 3}, want: "*redis.Client"},
		{name: "cluster seeds", cfg: session.Config{RedisAddrs: []string{"127.0.0.1:1", "127.0.0.1:2"}}, want: "*redis.ClusterClient"},
		{name: "one cluster seed", cfg: session.Config{RedisAddrs: []string{"127.0.0.1:1"}, RedisCluster: true}, want: "*redis.ClusterClient"},
		{name: "sentinel", cfg: session.Config{RedisAddrs: []string{"127.0.0.1:1", "127.0.0.1:2"}, RedisMasterName: "m", RedisDB: 1}, want: "*redis.Client"},
		{name: "cluster and sentinel", cfg: session.Config{RedisAddrs: []string{"127.0.0.1:1"}, RedisMasterName: "m", RedisCluster: true}, wantErr: "redis_cluster: a Sentinel set"},
		{name: "cluster with a db", cfg: session.Config{RedisAddrs: []string{"127.0.0.1:1"}, RedisCluster: true, RedisDB: 2}, wantErr: "redis_db: a Redis Cluster has only database 0"},
		{name: "cluster with url", cfg: session.Config{RedisURL: "redis://127.0.0.1:1", RedisCluster: true}, wantErr: "redis_cluster: only with redis_addrs"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Store, cfg.Secret = "redis", secret
			cfg.Defaults()
			err := cfg.Validate()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Validate: %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			rdb, err := session.NewRedisClient(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			got := typeName(rdb)
			if got != tt.want {
				t.Errorf("client %s, want %s", got, tt.want)
			}
		})
	}
}

func typeName(rdb redis.UniversalClient) string {
	switch rdb.(type) {
	case *redis.ClusterClient:
		return "*redis.ClusterClient"
	case *redis.Client:
		return "*redis.Client"
	default:
		return "other"
	}
}
