// Command fake-agrenting serves the Agrenting fake on loopback, for trying
// keygate against Agrenting without an account. It prints the base URL and
// the variables that point keygate at it (the keys are fake demo keys),
// then serves until SIGINT or SIGTERM. Flags choose among the behaviours no
// source settles (docs/providers/agrenting.md, "Unknown").
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
	noList := flag.Bool("no-list", false, "answer GET /agents/:id/credentials with 404 ROUTE_NOT_FOUND (Agrenting documents no list)")
	bareList := flag.Bool("bare-list", false, "list keys without any part of them (no key_prefix, last_four)")
	endSessions := flag.Bool("sessions-end-with-key", false, "end a key's session tokens when the key is rotated or revoked")
	answer := flag.String("rotate-answer", "api_key", "shape of the POST /auth/rotate-key answer: api_key, key, nested or credential")
	flag.Parse()
	shapes := map[string]agrentingtest.RotateAnswer{"api_key": agrentingtest.AnswerAPIKey, "key": agrentingtest.AnswerKeyOnly,
		"nested": agrentingtest.AnswerNested, "credential": agrentingtest.AnswerCredential}
	shape, ok := shapes[*answer]
	if !ok {
		log.Fatalf("fake-agrenting: -rotate-answer must be api_key, key, nested or credential, not %q", *answer)
	}
	opts := []agrentingtest.Option{agrentingtest.WithRotateAnswer(shape)}
	if *noList {
		opts = append(opts, agrentingtest.WithoutCredentialList())
	}
	if *bareList {
		opts = append(opts, agrentingtest.WithBareCredentialList())
	}
	if *endSessions {
		opts = append(opts, agrentingtest.WithSessionsEndingWithKey())
	}
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

	if err := loopback.Serve(ln, agrentingtest.New(opts...)); err != nil {
		log.Fatalf("fake-agrenting: %v", err)
	}
}
