// Command fake-cosmic serves the fake Cosmic API (package cosmictest) on a
// loopback address, seeded with demo data, and prints the environment
// lines that point keygate at it. The keys it prints are fake demo keys.
// What it reproduces, and from which source, is in docs/providers/cosmic.md.
//
//	go run ./provider/cosmic/cosmictest/cmd/fake-cosmic --addr 127.0.0.1:8787
package main

import (
	"flag"
	"fmt"
	"log"

	"github.com/keygate/keygate/provider/cosmic/cosmictest"
	"github.com/keygate/keygate/provider/internal/loopback"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to listen on (host:port)")
	noRead := flag.Bool("public-reads", false, "make the bucket take reads without a read key")
	lookupFirst := flag.Bool("object-lookup-first", false, "answer a write to a missing object 404 before checking the write key (an unknown of the real API)")
	flag.Parse()
	if err := run(*addr, *noRead, *lookupFirst); err != nil {
		log.Fatalf("fake-cosmic: %v", err)
	}
}

func run(addr string, publicReads, lookupFirst bool) error {
	ln, err := loopback.Listen(addr)
	if err != nil {
		return err
	}
	var opts []cosmictest.Option
	if publicReads {
		opts = append(opts, cosmictest.WithReadKey(""))
	}
	if lookupFirst {
		opts = append(opts, cosmictest.WithObjectLookupBeforeWriteKey())
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

	return loopback.Serve(ln, fake)
}
