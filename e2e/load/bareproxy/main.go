// Command bareproxy is the load harness's floor for any Go proxy: a bare
// httputil.ReverseProxy (Rewrite, SetURL, SetXForwarded) that injects a
// fixed bearer token, with a transport tuned like the gateway's (keep-alives,
// 64 idle connections per host, no compression) and, like the gateway, a
// pool of copy buffers, so that the floor is a well-configured proxy.
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"
)

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

type bufferPool struct{}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }

func main() {
	listen := flag.String("listen", "127.0.0.1:4001", "address to listen on")
	upstream := flag.String("upstream", "http://127.0.0.1:4000", "upstream base URL")
	flag.Parse()
	target, err := url.Parse(*upstream)
	if err != nil {
		log.Fatal(err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			pr.Out.Header.Set("Authorization", "Bearer bare-proxy-token")
		},
		BufferPool: bufferPool{},
		Transport: &http.Transport{
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
	srv := &http.Server{Addr: *listen, Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
