package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/bffgate/bffgate/bff"
)

// checkOnline is -check-config -online: it fetches each app's OIDC
// discovery and checks the app's config against it (bff.CheckOnline). It
// prints the notes and warnings to out and returns every problem at once, each
// with its app's key path.
func checkOnline(ctx context.Context, cfg *fileConfig, out io.Writer) error {
	client := &http.Client{Timeout: 10 * time.Second}
	var errs []error
	for i, app := range cfg.Apps {
		problems, warnings, notes := bff.CheckOnlineReport(ctx, client, app)
		for _, n := range notes {
			fmt.Fprintf(out, "info: apps[%d].%s\n", i, n)
		}
		for _, w := range warnings {
			fmt.Fprintf(out, "warning: apps[%d].%v\n", i, w)
		}
		for _, p := range problems {
			errs = append(errs, fmt.Errorf("apps[%d].%w", i, p))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("config does not match the identity provider:\n%w", errors.Join(errs...))
	}
	return nil
}
