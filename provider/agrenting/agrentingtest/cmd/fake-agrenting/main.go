// Command fake-agrenting serves the Agrenting fake on loopback, for trying
// keygate against Agrenting without an account. It prints the base URL and
// the variables that point keygate at it (the keys are fake demo keys),
// then serves until SIGINT or SIGTERM.
package main

import (
	"flag"
	"fmt"
	"log"

	"github.com/keygate/keygate/provider/agrenting/agrentingtest"
	"github.com/keygate/keygate/provider/internal/loopback"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to listen on")
	flag.Parse()
	ln, err := loopback.Listen(*addr)
	if err != nil {
		log.Fatalf("fake-agrenting: %v", err)
	}
	base := "http://" + ln.Addr().String() + "/api/v1"
	fmt.Printf("fake Agrenting listening on %s\n\n", base)
	fmt.Printf("# keygate configuration, as the demo agent (fake demo key):\n")
	fmt.Printf("AGRENTING_API_KEY=%s\nAGRENTING_API_URL=%s\n\n", agrentingtest.DemoAgentKey, base)
	fmt.Printf("# or as the demo user, who owns two agents:\n# AGRENTING_TOKEN=%s\n# AGRENTING_AGENT_ID=%s\n",
		agrentingtest.DemoUserToken, agrentingtest.DemoAgentID)

	if err := loopback.Serve(ln, agrentingtest.New()); err != nil {
		log.Fatalf("fake-agrenting: %v", err)
	}
}
