// Command fake-cosmic serves the fake Cosmic API (package cosmictest) on a
// loopback address, seeded with demo data, and prints the environment
// lines that point keygate at it. The keys it prints are fake demo keys.
//
//	go run ./provider/cosmic/cosmictest/cmd/fake-cosmic --addr 127.0.0.1:8787
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

	"github.com/keygate/keygate/provider/cosmic/cosmictest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to listen on (host:port)")
	noRead := flag.Bool("public-reads", false, "make the bucket take reads without a read key")
	flag.Parse()
	if err := run(*addr, *noRead); err != nil {
		log.Fatalf("fake-cosmic: %v", err)
	}
}

func run(addr string, publicReads bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--addr must be a loopback address (127.0.0.1, [::1] or localhost), not %q", host)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	var opts []cosmictest.Option
	if publicReads {
		opts = append(opts, cosmictest.WithReadKey(""))
	}
	fake := cosmictest.New(opts...)
	base := "http://" + ln.Addr().String()
	fake.SetBaseURL(base)

	fmt.Printf("fake Cosmic listening on %s\n", base)
	fmt.Printf("  data plane: %s\n  dashboard:  %s\n  workers:    %s\n\n", fake.APIURL(), fake.DAPIURL(), fake.WorkersURL())
	fmt.Println("# keygate environment (fake demo keys):")
	fmt.Printf("COSMIC_BUCKET_SLUG=%s\n", fake.Bucket())
	if k := fake.ReadKey(); k != "" {
		fmt.Printf("COSMIC_READ_KEY=%s\n", k)
	}
	fmt.Printf("COSMIC_WRITE_KEY=%s\n", fake.WriteKey())
	fmt.Printf("COSMIC_PAT=%s\n", fake.PAT())
	fmt.Printf("COSMIC_AGENT_KEY=%s\n", fake.AgentKey())
	fmt.Printf("COSMIC_API_URL=%s\n", fake.APIURL())
	fmt.Printf("COSMIC_DAPI_URL=%s\n", fake.DAPIURL())
	fmt.Printf("# the agent verify code is %s\n", cosmictest.DemoOTP)

	srv := &http.Server{Handler: fake, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
