package upstream

import (
	"cmp"
	"errors"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Defaults for the zero fields of NotifierConfig.
const (
	DefaultNotifyTimeout     = 5 * time.Second
	DefaultNotifyConcurrency = 8
	DefaultNotifyQueueSize   = 10000
	DefaultNotifyMaxAttempts = 6
	DefaultNotifyBaseDelay   = 500 * time.Millisecond
	DefaultNotifyMaxDelay    = 30 * time.Second
	DefaultNotifyClaimIdle   = 30 * time.Second
	DefaultEnqueueTimeout    = time.Second
)

// NotifierConfig tunes the delivery of logout tokens to downstream apps'
// back-channel logout URIs. Every zero field takes its documented default.
type NotifierConfig struct {
	// Timeout bounds one delivery attempt. Default 5s.
	Timeout time.Duration `toml:"timeout"`
	// Concurrency is the number of delivery workers. Default 8.
	Concurrency int `toml:"concurrency"`
	// QueueSize bounds the in-memory queue; Enqueue drops beyond it.
	// Default 10000. Ignored when Queue is set.
	QueueSize int `toml:"queue_size"`
	// MaxAttempts is the number of attempts per notification, the first
	// included. Default 6.
	MaxAttempts int `toml:"max_attempts"`
	// BaseDelay is the first retry delay; it doubles per retry up to
	// MaxDelay, each with ±50% jitter. Defaults 500ms and 30s. MaxDelay
	// also caps a receiver's Retry-After.
	BaseDelay time.Duration `toml:"base_delay"`
	MaxDelay  time.Duration `toml:"max_delay"`
	// ClaimIdle is how long a notification taken by one replica may sit
	// unacknowledged in the durable (Redis) queue before another replica
	// claims and delivers it: the replica died mid-delivery. A live
	// replica keeps its notifications claimed. Default 30s. Unused by the
	// in-memory queue.
	ClaimIdle time.Duration `toml:"claim_idle"`
	// EnqueueTimeout bounds how long queueing the notifications of one
	// session end may hold the request that ended it (a back-channel
	// logout): a durable queue's write (XADD) that has not answered by
	// then is given up, counted and logged as a drop. Default 1s.
	EnqueueTimeout time.Duration `toml:"enqueue_timeout"`
	// Queue replaces the in-memory queue (for a durable one). Default
	// NewMemoryQueue(QueueSize).
	Queue Queue `toml:"-"`
	// Sign returns the logout token of a notification (see
	// Signer.SignNotification). The notifier calls it at every attempt,
	// so that the token's iat and exp are fresh however long the
	// notification waited, while its jti (in n.Claims) stays the same.
	// Nil means each notification carries its Token, signed in advance.
	Sign func(n Notification) (string, error) `toml:"-"`
	// TracerProvider traces every delivery attempt, as a child of the
	// span that queued the notification. Nil means no tracing.
	TracerProvider trace.TracerProvider `toml:"-"`
}

// Validate reports every invalid field at once, each prefixed with its
// TOML key.
func (c NotifierConfig) Validate() error {
	var errs []error
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"timeout", c.Timeout}, {"base_delay", c.BaseDelay}, {"max_delay", c.MaxDelay}, {"claim_idle", c.ClaimIdle}, {"enqueue_timeout", c.EnqueueTimeout}} {
		if d.v < 0 {
			errs = append(errs, errors.New(d.key+": must be positive (or 0 for the default)"))
		}
	}
	for _, v := range []struct {
		key string
		v   int
	}{{"concurrency", c.Concurrency}, {"queue_size", c.QueueSize}, {"max_attempts", c.MaxAttempts}} {
		if v.v < 0 {
			errs = append(errs, errors.New(v.key+": must be positive (or 0 for the default)"))
		}
	}
	if d := c.withDefaults(); d.BaseDelay > d.MaxDelay {
		errs = append(errs, errors.New("base_delay: must not exceed max_delay"))
	}
	return errors.Join(errs...)
}

// withDefaults returns c with every zero (or invalid, negative) field set
// to its default.
func (c NotifierConfig) withDefaults() NotifierConfig {
	c.Timeout = cmp.Or(max(c.Timeout, 0), DefaultNotifyTimeout)
	c.BaseDelay = cmp.Or(max(c.BaseDelay, 0), DefaultNotifyBaseDelay)
	c.MaxDelay = cmp.Or(max(c.MaxDelay, 0), DefaultNotifyMaxDelay)
	c.ClaimIdle = cmp.Or(max(c.ClaimIdle, 0), DefaultNotifyClaimIdle)
	c.EnqueueTimeout = cmp.Or(max(c.EnqueueTimeout, 0), DefaultEnqueueTimeout)
	c.Concurrency = cmp.Or(max(c.Concurrency, 0), DefaultNotifyConcurrency)
	c.QueueSize = cmp.Or(max(c.QueueSize, 0), DefaultNotifyQueueSize)
	c.MaxAttempts = cmp.Or(max(c.MaxAttempts, 0), DefaultNotifyMaxAttempts)
	return c
}
