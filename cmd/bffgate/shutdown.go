package main

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/bffgate/bffgate/bff"
	"github.com/bffgate/bffgate/upstream"
)

// The phases of a shutdown and the share of server.shutdown_timeout by
// which each must be done, counted from the start of the shutdown. A
// phase that ends early leaves its time to the later ones; one that runs
// out of time does not take theirs.
const (
	// The HTTP drain: listeners closed, event streams told to reconnect
	// and ended, in-flight requests finish.
	httpDrainUntil = 0.50
	// Side by side once the drain is done: queued downstream logout
	// notifications are delivered, and refresh-token revocations finish.
	notifierDrainUntil = 0.80
	revocationsUntil   = 0.90
	// Closing the session store, then flushing the spans not yet
	// exported (those of the drain included), take what is left.
	storeCloseUntil = 1.0
)

// shutdownSteps are what a shutdown stops, in order.
type shutdownSteps struct {
	servers    []*http.Server // nil when none started
	notifier   *upstream.Notifier
	gateway    *bff.Gateway
	closeStore func()
	// flushTraces exports the spans still buffered and stops the
	// exporter (a no-op when tracing is off).
	flushTraces func(context.Context)
}

// shutdown runs the phases, each within its budget of total. It returns
// once everything has stopped: a server whose drain runs out of time is
// closed, cutting its remaining connections.
func shutdown(total time.Duration, s shutdownSteps, logger *slog.Logger) {
	start := time.Now()
	phase := func(until float64) (context.Context, context.CancelFunc) {
		return context.WithDeadline(context.Background(), start.Add(time.Duration(float64(total)*until)))
	}

	ctx, cancel := phase(httpDrainUntil)
	var wg sync.WaitGroup
	// Parked event streams are not net/http's any more: the drain waits
	// for them to be told to reconnect and closed.
	wg.Go(s.gateway.CloseStreams)
	for _, srv := range s.servers {
		wg.Go(func() {
			if err := srv.Shutdown(ctx); err != nil {
				logger.Warn("shutdown: requests cut at the end of the HTTP drain", "addr", srv.Addr, "err", err)
				srv.Close()
			}
		})
	}
	wg.Wait()
	cancel()

	nctx, ncancel := phase(notifierDrainUntil)
	defer ncancel()
	rctx, rcancel := phase(revocationsUntil)
	defer rcancel()
	wg.Go(func() {
		if err := s.notifier.Shutdown(nctx); err != nil {
			logger.Error("shutdown: downstream notifications", "err", err)
		}
	})
	wg.Go(func() {
		if err := s.gateway.Close(rctx); err != nil {
			logger.Warn("shutdown: refresh-token revocations", "err", err)
		}
	})
	wg.Wait()

	sctx, scancel := phase(storeCloseUntil)
	defer scancel()
	s.closeStore()
	if sctx.Err() != nil {
		logger.Warn("shutdown: closing the session store overran server.shutdown_timeout")
	}
	if s.flushTraces != nil {
		s.flushTraces(sctx)
	}
}
