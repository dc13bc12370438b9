// Command fake-agrenting serves the Agrenting fake on loopback, for trying
// keygate against Agrenting without an account. It prints the base URL and
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

	"github.com/keygate/keygate/provider/agrenting/agrentingtest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to listen on")
	flag.Parse()
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		log.Fatalf("fake-agrenting: --addr: %v", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		log.Fatalf("fake-agrenting: --addr must be a loopback address (127.0.0.1, ::1 or localhost)")
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("fake-agrenting: %v", err)
	}
	base := "http://" + ln.Addr().String() + "/api/v1"
	fmt.Printf("fake Agrenting listening on %s\n\n", base)
	fmt.Printf("# keygate configuration, as the demo agent (fake demo key):\n")
	fmt.Printf("AGRENTING_API_KEY=%s\nAGRENTING_API_URL=%s\n\n", agrentingtest.DemoAgentKey, base)
	fmt.Printf("# or as the demo user, who owns two agents:\n# AGRENTING_TOKEN=%s\n# AGRENTING_AGENT_ID=%s\n",
		agrentingtest.DemoUserToken, agrentingtest.DemoAgentID)

	srv := &http.Server{Handler: agrentingtest.New(), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "fake-agrenting: %v\n", err)
		os.Exit(1)
	}
}
