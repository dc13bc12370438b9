// Command fake-cencori serves the Cencori fake on loopback, for trying
// keygate against Cencori without an account. It prints the base URL and
// the variables that point keygate at it (the keys are fake demo keys),
// then serves until SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/keygate/keygate/provider/cencori/cencoritest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to listen on")
	memoryOff := flag.Bool("memory-disabled", false, "answer 404 on memory paths, as production cencori.com did before memory launched")
	flag.Parse()
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		log.Fatalf("fake-cencori: --addr: %v", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		log.Fatalf("fake-cencori: --addr must be a loopback address (127.0.0.1, ::1 or localhost)")
	}
	var opts []cencoritest.Option
	if *memoryOff {
		opts = append(opts, cencoritest.WithMemoryDisabled())
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("fake-cencori: %v", err)
	}
	base := "http://" + ln.Addr().String()
	fmt.Printf("fake Cencori listening on %s\n\n", base)
	fmt.Printf("# keygate configuration (fake demo keys):\n")
	fmt.Printf("CENCORI_API_KEY=%s\nCENCORI_API_URL=%s\nCENCORI_GATEWAY_URL=%s\n\n", cencoritest.DemoSecretKey, base, base)
	fmt.Printf("# other demo keys: test secret %s\n#   publishable (allowed domain %s) %s\n#   agent %s\n#   unbound agent %s\n",
		cencoritest.DemoTestSecretKey, cencoritest.DemoAllowedDomain, cencoritest.DemoPublishableKey, cencoritest.DemoAgentKey, cencoritest.DemoUnboundAgentKey)

	srv := &http.Server{Handler: cencoritest.New(opts...), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "fake-cencori: %v\n", err)
		os.Exit(1)
	}
}
