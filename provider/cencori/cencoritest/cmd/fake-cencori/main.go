// Command fake-cencori serves the Cencori fake on loopback, for trying
// keygate against Cencori without an account. It prints the base URL and
// the variables that point keygate at it (the keys are fake demo keys),
// then serves until SIGINT or SIGTERM.
package main

import (
	"flag"
	"fmt"
	"log"

	"github.com/keygate/keygate/provider/cencori/cencoritest"
	"github.com/keygate/keygate/provider/internal/loopback"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to listen on")
	memory := flag.Bool("memory", false, "serve the memory API, as Cencori does on localhost; without it every memory path answers 404, as on cencori.com")
	flag.Parse()
	var opts []cencoritest.Option
	if *memory {
		opts = append(opts, cencoritest.WithMemoryEnabled())
	}
	ln, err := loopback.Listen(*addr)
	if err != nil {
		log.Fatalf("fake-cencori: %v", err)
	}
	base := "http://" + ln.Addr().String()
	fmt.Printf("fake Cencori listening on %s\n", base)
	if *memory {
		fmt.Printf("memory API: served (-memory), as on a local Cencori build\n\n")
	} else {
		fmt.Printf("memory API: gated, 404 {\"error\":\"Not found\"} as on cencori.com; run with -memory to serve it\n\n")
	}
	fmt.Printf("# keygate configuration (fake demo keys):\n")
	fmt.Printf("CENCORI_API_KEY=%s\nCENCORI_API_URL=%s\nCENCORI_GATEWAY_URL=%s\n\n", cencoritest.DemoSecretKey, base, base)
	fmt.Printf("# other demo keys: test secret %s\n#   publishable (allowed domain %s) %s\n#   agent %s\n#   unbound agent %s\n",
		cencoritest.DemoTestSecretKey, cencoritest.DemoAllowedDomain, cencoritest.DemoPublishableKey, cencoritest.DemoAgentKey, cencoritest.DemoUnboundAgentKey)

	if err := loopback.Serve(ln, cencoritest.New(opts...)); err != nil {
		log.Fatalf("fake-cencori: %v", err)
	}
}
