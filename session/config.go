package session

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"
)

// Config is the [session] section of the configuration.
type Config struct {
	// Store is "memory" (the embedded default) or "redis".
	Store string `toml:"store"`
	// RedisURL is a redis:// or rediss:// URL of one server (user,
	// password and database in the URL), for Store "redis". Either it or
	// RedisAddrs.
	RedisURL string `toml:"redis_url"`
	// RedisAddrs are host:port seeds of a Redis Sentinel set (with
	// RedisMasterName) or of a Redis Cluster (without), instead of
	// RedisURL.
	RedisAddrs []string `toml:"redis_addrs"`
	// RedisMasterName is the Sentinel master's name.
	RedisMasterName string `toml:"redis_master_name"`
	// RedisCluster says that RedisAddrs are Cluster seeds even when there
	// is only one (a Cluster's configuration endpoint). Several addresses
	// without RedisMasterName always mean a Cluster.
	RedisCluster bool `toml:"redis_cluster"`
	// RedisUsername and RedisPassword authenticate to the servers given
	// by RedisAddrs (ACL user; empty username means "default").
	RedisUsername string `toml:"redis_username"`
	RedisPassword string `toml:"redis_password"`
	// RedisSentinelPassword authenticates to the Sentinels themselves.
	RedisSentinelPassword string `toml:"redis_sentinel_password"`
	// RedisDB selects the database (not on a Cluster).
	RedisDB int `toml:"redis_db"`
	// RedisTLS connects to RedisAddrs with TLS.
	RedisTLS bool `toml:"redis_tls"`
	// RedisCache keeps recently read sessions in each replica's memory,
	// invalidated through Redis pub/sub (see RedisStore); false reads
	// Redis on every request. Default true.
	RedisCache *bool `toml:"redis_cache"`
	// Secret derives the cookie and encryption keys; at least 32 bytes.
	Secret string `toml:"secret"`
	// IdleTimeout ends a session unused this long. Default 30m.
	IdleTimeout time.Duration `toml:"idle_timeout"`
	// AbsoluteTimeout ends a session this long after login. Default 8h.
	AbsoluteTimeout time.Duration `toml:"absolute_timeout"`
}

// Defaults fills in the zero values of c.
func (c *Config) Defaults() {
	if c.Store == "" {
		c.Store = "memory"
	}
	if c.RedisCache == nil {
		on := true
		c.RedisCache = &on
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.AbsoluteTimeout == 0 {
		c.AbsoluteTimeout = DefaultAbsoluteTimeout
	}
}

// CacheConfig returns the RedisStore's cache configuration of c.
func (c *Config) CacheConfig() CacheConfig {
	return CacheConfig{Off: c.RedisCache != nil && !*c.RedisCache}
}

// Timeouts returns the lifetimes of c.
func (c *Config) Timeouts() Timeouts {
	return Timeouts{Idle: c.IdleTimeout, Absolute: c.AbsoluteTimeout}
}

// Validate reports every problem, each prefixed with its key.
func (c *Config) Validate() error {
	var errs []error
	switch c.Store {
	case "memory":
	case "redis":
		errs = append(errs, c.validateRedis()...)
	default:
		errs = append(errs, fmt.Errorf("store: must be \"memory\" or \"redis\", not %q", c.Store))
	}
	if len(c.Secret) < 32 {
		errs = append(errs, errors.New("secret: must be at least 32 characters (use a random value from the environment, e.g. \"${BFFGATE_SESSION_SECRET}\")"))
	}
	if c.IdleTimeout <= 0 {
		errs = append(errs, errors.New("idle_timeout: must be positive"))
	}
	if c.AbsoluteTimeout <= 0 {
		errs = append(errs, errors.New("absolute_timeout: must be positive"))
	} else if c.IdleTimeout > c.AbsoluteTimeout {
		errs = append(errs, errors.New("idle_timeout: must not exceed absolute_timeout"))
	}
	return errors.Join(errs...)
}

// isCluster reports whether the Redis keys name a Cluster: several
// redis_addrs without redis_master_name, or redis_cluster.
func (c *Config) isCluster() bool {
	return c.RedisMasterName == "" && (c.RedisCluster || len(c.RedisAddrs) > 1)
}

// validateRedis checks the connection keys of store "redis".
func (c *Config) validateRedis() []error {
	var errs []error
	switch {
	case c.RedisURL != "" && len(c.RedisAddrs) > 0:
		errs = append(errs, errors.New("redis_addrs: set either redis_url or redis_addrs, not both"))
	case c.RedisURL != "":
		if u, err := url.Parse(c.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			errs = append(errs, errors.New("redis_url: must be a redis:// or rediss:// URL"))
		}
		for _, k := range []struct {
			key string
			set bool
		}{
			{"redis_master_name", c.RedisMasterName != ""},
			{"redis_cluster", c.RedisCluster},
			{"redis_username", c.RedisUsername != ""},
			{"redis_password", c.RedisPassword != ""},
			{"redis_sentinel_password", c.RedisSentinelPassword != ""},
			{"redis_db", c.RedisDB != 0},
			{"redis_tls", c.RedisTLS},
		} {
			if k.set {
				errs = append(errs, fmt.Errorf("%s: only with redis_addrs (put credentials and the database in redis_url)", k.key))
			}
		}
	case len(c.RedisAddrs) > 0:
		for i, a := range c.RedisAddrs {
			if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
				errs = append(errs, fmt.Errorf("redis_addrs[%d]: must be host:port", i))
			}
		}
		if c.RedisDB < 0 {
			errs = append(errs, errors.New("redis_db: must not be negative"))
		}
		if c.RedisCluster && c.RedisMasterName != "" {
			errs = append(errs, errors.New("redis_cluster: a Sentinel set (redis_master_name) is not a Cluster; set one of them"))
		}
		if c.isCluster() && c.RedisDB != 0 {
			errs = append(errs, errors.New("redis_db: a Redis Cluster has only database 0"))
		}
	default:
		errs = append(errs, errors.New("redis_url: set redis_url (or redis_addrs) when store is \"redis\""))
	}
	return errs
}
