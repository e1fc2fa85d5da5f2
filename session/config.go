package session

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Config is the [session] section of the configuration.
type Config struct {
	// Store is "memory" (the embedded default) or "redis".
	Store string `toml:"store"`
	// RedisURL is a redis:// or rediss:// URL, for Store "redis".
	RedisURL string `toml:"redis_url"`
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
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.AbsoluteTimeout == 0 {
		c.AbsoluteTimeout = DefaultAbsoluteTimeout
	}
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
		if u, err := url.Parse(c.RedisURL); c.RedisURL == "" || err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
			errs = append(errs, errors.New("redis_url: must be a redis:// or rediss:// URL when store is \"redis\""))
		}
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
