package authserver_test

import (
	"testing"

	"github.com/keygate/keygate/oauth/authserver/authservertest"
)

// BenchmarkVerify compares, in one run, what the resource side does per
// request for an OAuth access token (signature, claims, and the grant and
// its approving key read from the store: revocation takes effect at once)
// with the verification of a keygate token (a lookup and a digest
// compare). docs/oauth.md publishes the figures.
func BenchmarkVerify(b *testing.B) {
	issuer := authservertest.Start(b, "http://127.0.0.1:1/mcp")
	access, _ := issuer.AccessToken("content:read")
	ctx := b.Context()
	verifiers := []struct {
		name   string
		verify func() error
	}{
		{"access_token", func() error { _, err := issuer.Server.Verifier().Verify(ctx, access); return err }},
		{"pat", func() error { _, err := issuer.Store.Verify(ctx, issuer.Token); return err }},
	}
	for _, v := range verifiers {
		if err := v.verify(); err != nil {
			b.Fatal(err)
		}
	}
	for _, v := range verifiers {
		b.Run(v.name+"/serial", func(b *testing.B) {
			for b.Loop() {
				if err := v.verify(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(v.name+"/parallel", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := v.verify(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
