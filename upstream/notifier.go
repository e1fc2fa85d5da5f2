package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Notification is one logout token on its way to one back-channel logout
// URI. Every attempt sends a token with the same jti: signed from Claims
// at each attempt when NotifierConfig.Sign is set, else Token as is. A
// durable queue stores it as JSON.
type Notification struct {
	App    string `json:"app"`    // the app whose session ended; a metrics label
	Target string `json:"target"` // stable name of the receiver (e.g. "demo/0"); a metrics label
	URL    string `json:"url"`    // the receiver's backchannel_logout_uri
	// Claims are the logout token's claims, Claims.JTI included.
	Claims LogoutClaims `json:"claims"`
	// Token is a logout token signed in advance, for a notifier without
	// Sign; never logged nor stored.
	Token string `json:"-"`
	JTI   string `json:"jti"` // the token's jti, for logs
	// Attempts already made (a durable queue may hand back a notification
	// that was tried before).
	Attempts int `json:"attempts,omitempty"`
	// EnqueuedAt is set by Enqueue when zero; the duration metric starts
	// here.
	EnqueuedAt time.Time `json:"enqueued_at"`
	// Traceparent is the W3C trace context of the span that queued the
	// notification (set by Enqueue when that span is valid): delivery
	// attempts are its children, on any replica.
	Traceparent string `json:"traceparent,omitempty"`

	// receipt is the durable queue's handle of the notification (a Redis
	// stream entry id), for Ack.
	receipt string
}

// Notifier delivers logout tokens to downstream apps in the background,
// with retries. Start it once; Shutdown it once. Notifications are
// delivered at least once (a receiver may see a jti again after a timeout)
// and in no particular order.
type Notifier struct {
	cfg    NotifierConfig
	client *http.Client
	queue  Queue
	log    *slog.Logger
	m      notifierMetrics

	mu          sync.Mutex
	cancel      context.CancelFunc // cancels the workers; nil before Start
	wg          sync.WaitGroup
	undelivered atomic.Int64
	queueDown   atomic.Bool // the durable queue's last Pop failed (logged once)
}

type notifierMetrics struct {
	total    *prometheus.CounterVec   // app, target, result
	attempts *prometheus.CounterVec   // app, target
	duration *prometheus.HistogramVec // app, target
	dropped  *prometheus.CounterVec   // app
}

// NewNotifier returns a notifier that posts with client (nil means a
// client on NewTransport's defaults; redirects are never followed) and
// registers its metrics on reg (nil means none are exported). It panics if
// the metrics are already registered on reg.
func NewNotifier(cfg NotifierConfig, client *http.Client, reg prometheus.Registerer, logger *slog.Logger) *Notifier {
	cfg = cfg.withDefaults()
	if client == nil {
		client = &http.Client{Transport: NewTransport(TransportConfig{})}
	}
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	q := cfg.Queue
	if q == nil {
		q = NewMemoryQueue(cfg.QueueSize)
	}
	n := &Notifier{cfg: cfg, client: &c, queue: q, log: logger, m: newNotifierMetrics()}
	reg.MustRegister(n.m.total, n.m.attempts, n.m.duration, n.m.dropped)
	return n
}

func newNotifierMetrics() notifierMetrics {
	return notifierMetrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bffgate_downstream_logout_total",
			Help: "Back-channel logout notifications to downstream apps by final result (delivered, failed, dropped).",
		}, []string{"app", "target", "result"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bffgate_downstream_logout_attempts_total",
			Help: "HTTP attempts to deliver back-channel logout notifications to downstream apps.",
		}, []string{"app", "target"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bffgate_downstream_logout_duration_seconds",
			Help:    "Time from enqueueing a downstream logout notification to its delivery or final failure.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2.5, 10), // 50ms … ~3m
		}, []string{"app", "target"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bffgate_downstream_logout_dropped_total",
			Help: "Downstream logout notifications never delivered because the queue was full or the gateway shut down first.",
		}, []string{"app"}),
	}
}

// Start launches the delivery workers. Calls after the first do nothing.
func (nt *Notifier) Start() {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if nt.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	nt.cancel = cancel
	for range nt.cfg.Concurrency {
		nt.wg.Go(func() { nt.work(ctx) })
	}
}

// Enqueue queues n for delivery. It holds its caller at most until the
// earlier of ctx's deadline and NotifierConfig.EnqueueTimeout: the
// in-memory queue never waits, and a durable queue's write is given up
// at that deadline (the Redis client must honour context deadlines, as
// session.NewRedisClient's does). ctx's cancellation is ignored: a
// session that ended must still be announced when the request that ended
// it goes away. When n cannot be queued (the queue is full or down, or
// the notifier is shutting down) Enqueue drops it, counts and logs the
// drop, and returns false.
func (nt *Notifier) Enqueue(ctx context.Context, n Notification) bool {
	if n.EnqueuedAt.IsZero() {
		n.EnqueuedAt = time.Now()
	}
	if n.Traceparent == "" {
		n.Traceparent = traceparent(ctx)
	}
	ctx, cancel := nt.enqueueContext(ctx)
	defer cancel()
	err := nt.queue.Push(ctx, n)
	if err == nil {
		return true
	}
	nt.drop(n, "not queued", err)
	return false
}

// enqueueContext keeps ctx's values and deadline, not its cancellation,
// and caps the deadline at EnqueueTimeout from now.
func (nt *Notifier) enqueueContext(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(nt.cfg.EnqueueTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	return context.WithDeadline(context.WithoutCancel(ctx), deadline)
}

// EnqueueTimeout is NotifierConfig.EnqueueTimeout with its default.
func (nt *Notifier) EnqueueTimeout() time.Duration { return nt.cfg.EnqueueTimeout }

// drop counts and logs a notification that will not be delivered.
func (nt *Notifier) drop(n Notification, msg string, err error) {
	nt.m.total.WithLabelValues(n.App, n.Target, "dropped").Inc()
	nt.m.dropped.WithLabelValues(n.App).Inc()
	nt.log.Error("downstream logout notification dropped: "+msg,
		"app", n.App, "target", n.Target, "jti", n.JTI, "attempts", n.Attempts, "err", err)
}

func (nt *Notifier) work(ctx context.Context) {
	// A durable queue's outage (Redis down): each worker backs off from
	// 100 ms to 5 s between attempts, and the outage is logged once when it
	// starts and once when it ends, not per worker per attempt.
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.MaxInterval = 5 * time.Second
	for ctx.Err() == nil {
		n, err := nt.queue.Pop(ctx)
		if err != nil {
			if errors.Is(err, ErrQueueClosed) || ctx.Err() != nil {
				return // closed and drained, or cancelled
			}
			if nt.queueDown.CompareAndSwap(false, true) {
				nt.log.Error("downstream logout queue unavailable; delivery waits until it is back", "err", err)
			}
			select {
			case <-time.After(b.NextBackOff()):
			case <-ctx.Done():
			}
			continue
		}
		b.Reset()
		if nt.queueDown.CompareAndSwap(true, false) {
			nt.log.Info("downstream logout queue available again")
		}
		nt.deliver(ctx, n)
	}
}

// deliver posts n until it succeeds, fails for good, runs out of attempts
// or ctx ends, and records the outcome.
func (nt *Notifier) deliver(ctx context.Context, n Notification) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = nt.cfg.BaseDelay
	b.MaxInterval = nt.cfg.MaxDelay
	b.Multiplier = 2
	tries := max(nt.cfg.MaxAttempts-n.Attempts, 1)

	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		tok, err := nt.token(n)
		if err != nil {
			return struct{}{}, backoff.Permanent(fmt.Errorf("sign logout token: %w", err))
		}
		n.Attempts++
		nt.m.attempts.WithLabelValues(n.App, n.Target).Inc()
		actx, span := nt.startAttempt(ctx, n)
		err = nt.post(actx, n, tok)
		endAttempt(span, err)
		return struct{}{}, err
	},
		backoff.WithBackOff(b),
		backoff.WithMaxTries(uint(tries)),
		backoff.WithMaxElapsedTime(0), // bounded by MaxTries
		backoff.WithNotify(func(err error, next time.Duration) {
			nt.log.Warn("downstream logout attempt failed, retrying",
				"app", n.App, "target", n.Target, "jti", n.JTI, "attempts", n.Attempts, "retry_in", next, "err", err)
		}),
	)
	observe := func() {
		if !n.EnqueuedAt.IsZero() {
			nt.m.duration.WithLabelValues(n.App, n.Target).Observe(time.Since(n.EnqueuedAt).Seconds())
		}
	}
	durable, isDurable := nt.queue.(durableQueue)
	switch {
	case ctx.Err() != nil && isDurable:
		// Not acknowledged: it stays in the durable queue, and another
		// replica (or this one after a restart) claims and delivers it.
		nt.log.Warn("downstream logout left in the durable queue at shutdown",
			"app", n.App, "target", n.Target, "jti", n.JTI, "attempts", n.Attempts)
		return
	case ctx.Err() != nil:
		nt.undelivered.Add(1)
		nt.drop(n, "shut down before delivery", err)
		return
	case err == nil:
		nt.m.total.WithLabelValues(n.App, n.Target, "delivered").Inc()
		observe()
		nt.log.Debug("downstream logout delivered", "app", n.App, "target", n.Target, "jti", n.JTI, "attempts", n.Attempts)
	default:
		nt.m.total.WithLabelValues(n.App, n.Target, "failed").Inc()
		observe()
		nt.log.Error("downstream logout failed", "app", n.App, "target", n.Target, "jti", n.JTI, "attempts", n.Attempts, "err", err)
	}
	if isDurable {
		// A final outcome. If the ack is lost, the notification is
		// delivered again: at least once.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), nt.cfg.Timeout)
		defer cancel()
		if err := durable.Ack(actx, n); err != nil {
			nt.log.Warn("downstream logout not acknowledged in the durable queue; it will be sent again",
				"app", n.App, "target", n.Target, "jti", n.JTI, "err", err)
		}
	}
}

// token returns the logout token of one attempt: signed now from
// n.Claims when the notifier has a Sign hook, else n.Token.
func (nt *Notifier) token(n Notification) (string, error) {
	if nt.cfg.Sign == nil {
		if n.Token == "" {
			return "", errors.New("notification has no token and the notifier cannot sign")
		}
		return n.Token, nil
	}
	return nt.cfg.Sign(n)
}

// StatusError is a receiver's answer other than 200 or 204.
type StatusError struct{ Code int }

func (e *StatusError) Error() string { return "receiver answered " + strconv.Itoa(e.Code) }

// post makes one attempt. It returns nil on 200 or 204, a
// backoff.Permanent error for answers not worth retrying (400 and other
// 4xx except 429, 3xx), and a plain or Retry-After error otherwise.
func (nt *Notifier) post(ctx context.Context, n Notification, token string) error {
	ctx, cancel := context.WithTimeout(ctx, nt.cfg.Timeout)
	defer cancel()
	body := url.Values{"logout_token": {token}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.URL, strings.NewReader(body))
	if err != nil {
		return backoff.Permanent(fmt.Errorf("build request: %w", err))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cache-Control", "no-store")
	if trace.SpanContextFromContext(ctx).IsValid() {
		traceContext.Inject(ctx, propagation.HeaderCarrier(req.Header))
	}
	resp, err := nt.client.Do(req)
	if err != nil {
		return err // network error or timeout: retry
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // reuse the connection
	_ = resp.Body.Close()

	code := resp.StatusCode
	switch {
	case code == http.StatusOK || code == http.StatusNoContent:
		return nil
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return fmt.Errorf("%w, %w", &StatusError{Code: code}, &backoff.RetryAfterError{Duration: min(d, nt.cfg.MaxDelay)})
		}
		return &StatusError{Code: code}
	case code >= 500:
		return &StatusError{Code: code}
	default:
		return backoff.Permanent(&StatusError{Code: code})
	}
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an
// HTTP-date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil {
		return time.Duration(max(s, 0)) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// Shutdown stops accepting notifications and lets the workers drain the
// queue until ctx ends. Then it cancels deliveries in flight, counts and
// logs every notification left undelivered, and returns an error saying
// how many there were (nil if none).
func (nt *Notifier) Shutdown(ctx context.Context) error {
	_ = nt.queue.Close()
	done := make(chan struct{})
	go func() { nt.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	nt.mu.Lock()
	if nt.cancel != nil {
		nt.cancel()
	}
	nt.mu.Unlock()
	<-done

	// What is still queued was never attempted. A cancelled context makes
	// Pop return without waiting.
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	for {
		n, err := nt.queue.Pop(stopped)
		if err != nil {
			break
		}
		nt.undelivered.Add(1)
		nt.drop(n, "shut down before delivery", ctx.Err())
	}
	if left := nt.undelivered.Load(); left > 0 {
		nt.log.Error("downstream logout notifier shut down with undelivered notifications", "undelivered", left)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("notifier: %d logout notifications undelivered: %w", left, err)
		}
		return fmt.Errorf("notifier: %d logout notifications undelivered", left)
	}
	return nil
}
