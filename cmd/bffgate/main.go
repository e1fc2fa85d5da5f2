// Command bffgate is an OpenID Connect gateway for browser apps: it logs
// users in, keeps their tokens server-side, proxies API calls with the
// access token and handles logout end to end.
package main

import (
	"context"
	"fmt"
	"os"
)

func main() {
	if err := reserveGCHeadroom(os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "bffgate:", err)
		os.Exit(1)
	}
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bffgate:", err)
		os.Exit(1)
	}
}
