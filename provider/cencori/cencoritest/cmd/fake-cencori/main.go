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
	memoryOff := flag.Bool("memory-disabled", false, "answer 404 on memory paths, as production cencori.com did before memory launched")
	flag.Parse()
	var opts []cencoritest.Option
	if *memoryOff {
		opts = append(opts, cencoritest.WithMemoryDisabled())
	}
	ln, err := loopback.Listen(*addr)
	if err != nil {
		log.Fatalf("fake-cencori: %v", err)
	}
	base := "http://" + ln.Addr().String()
	fmt.Printf("fake Cencori listening on %s\n\n", base)
	fmt.Printf("# keygate configuration (fake demo keys):\n")
	fmt.Printf("CENCORI_API_KEY=%s\nCENCORI_API_URL=%s\nCENCORI_GATEWAY_URL=%s\n\n", cencoritest.DemoSecretKey, base, base)
	fmt.Printf("# other demo keys: test secret %s\n#   publishable (allowed domain %s) %s\n#   agent %s\n#   unbound agent %s\n",
		cencoritest.DemoTestSecretKey, cencoritest.DemoAllowedDomain, cencoritest.DemoPublishableKey, cencoritest.DemoAgentKey, cencoritest.DemoUnboundAgentKey)

	if err := loopback.Serve(ln, cencoritest.New(opts...)); err != nil {
		log.Fatalf("fake-cencori: %v", err)
	}
}
