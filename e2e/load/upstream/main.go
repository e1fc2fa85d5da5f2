// Command upstream is the load harness's API: the fastest upstream the
// targets can have. It answers every request with a small JSON body, or
// 401 when the request carries no token (so that a proxy that forgot to
// attach the token shows up as non-2xx in the load generator): a bearer,
// or a DPoP-bound token ("Authorization: DPoP …") with a DPoP proof
// header. The proof is not verified (the harness measures the gateway's
// signing, not an API's checking), only required.
package main

import (
	"flag"
	"log"
	"net/http"
	"strings"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:4000", "address to listen on")
	flag.Parse()
	body := []byte(`{"ok":true}`)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !authorized(r) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	srv := &http.Server{Addr: *listen, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

// authorized reports whether r carries a bearer token, or a DPoP token
// with its proof.
func authorized(r *http.Request) bool {
	a := r.Header.Get("Authorization")
	if strings.HasPrefix(a, "Bearer ") {
		return true
	}
	return strings.HasPrefix(a, "DPoP ") && len(a) > len("DPoP ") && r.Header.Get("DPoP") != ""
}
