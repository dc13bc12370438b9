// Command fake-cockpit serves the fake Cockpit API (package cockpittest)
// on a loopback address, seeded with demo data, and prints the environment
// lines that point keygate at it. The keys it prints are fake demo keys.
//
//	go run ./provider/cockpit/cockpittest/cmd/fake-cockpit --addr 127.0.0.1:8788
package main

import (
	"flag"
	"fmt"
	"log"

	"github.com/keygate/keygate/provider/cockpit/cockpittest"
	"github.com/keygate/keygate/provider/internal/loopback"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to listen on (host:port)")
	flag.Parse()
	if err := run(*addr); err != nil {
		log.Fatalf("fake-cockpit: %v", err)
	}
}

func run(addr string) error {
	ln, err := loopback.Listen(addr)
	if err != nil {
		return err
	}
	fake := cockpittest.New()
	base := "http://" + ln.Addr().String()
	fake.SetBaseURL(base)

	fmt.Printf("fake Cockpit listening on %s (API at %s/api)\n\n", base, base)
	fmt.Println("# keygate environment (fake demo keys; read-write key shown):")
	fmt.Printf("COCKPIT_URL=%s\n", base)
	fmt.Printf("COCKPIT_API_KEY=%s\n", cockpittest.DemoRWKey)
	fmt.Println("COCKPIT_MODELS=posts,authors,pages,settings")
	fmt.Println("# other demo keys:")
	fmt.Printf("#   read-only custom key: %s\n", cockpittest.DemoROKey)
	fmt.Printf("#   key without a role:   %s\n", cockpittest.DemoNoRoleKey)
	fmt.Printf("#   user key (editor):    %s\n", cockpittest.DemoUserKey)

	return loopback.Serve(ln, fake)
}
