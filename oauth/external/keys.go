package external

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// maxJWKSBytes bounds the key set read.
const maxJWKSBytes = 256 << 10

// remoteKeys is the issuer's key set (go-oidc's KeySet). go-oidc's own
// RemoteKeySet fetches the set again for every token signed with a key it
// has not seen, so anyone could make keygate fetch it at will with made-up
// key ids; this one fetches at most once per minRefetch for such tokens,
// one fetch at a time, and keeps public signature keys only.
type remoteKeys struct {
	url        string
	client     *http.Client
	algs       []jose.SignatureAlgorithm
	now        func() time.Time
	minRefetch time.Duration

	fetch sync.Mutex // held during a fetch

	mu        sync.Mutex
	keys      []jose.JSONWebKey
	fetchedAt time.Time
	fetched   bool
}

func newRemoteKeys(u string, client *http.Client, algs []string, now func() time.Time, minRefetch time.Duration) *remoteKeys {
	k := &remoteKeys{url: u, client: client, now: now, minRefetch: minRefetch}
	for _, a := range algs {
		k.algs = append(k.algs, jose.SignatureAlgorithm(a))
	}
	return k
}

func (k *remoteKeys) VerifySignature(ctx context.Context, token string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(token, k.algs)
	if err != nil {
		return nil, fmt.Errorf("parsing token: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("token must have exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	keys, err := k.candidates(ctx, kid)
	if err != nil {
		return nil, err
	}
	for _, key := range keys {
		if payload, err := jws.Verify(key); err == nil {
			return payload, nil
		}
	}
	return nil, errors.New("no key of the issuer verifies the token")
}

// candidates returns the keys that may have signed a token with key id kid,
// fetching the set when none is known and the last fetch is old enough.
func (k *remoteKeys) candidates(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	if keys, ok := k.cached(kid); ok {
		return keys, nil
	}
	k.fetch.Lock()
	defer k.fetch.Unlock()
	if keys, ok := k.cached(kid); ok { // another call fetched meanwhile
		return keys, nil
	}
	var set jose.JSONWebKeySet
	if err := getJSON(ctx, k.client, k.url, maxJWKSBytes, &set); err != nil {
		return nil, fmt.Errorf("fetching the issuer's keys: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, key := range set.Keys {
		if key.IsPublic() && key.Valid() && (key.Use == "" || key.Use == "sig") {
			keys = append(keys, key)
		}
	}
	k.mu.Lock()
	k.keys, k.fetchedAt, k.fetched = keys, k.now(), true
	k.mu.Unlock()
	return match(keys, kid), nil
}

// cached returns the known keys for kid. It reports ok when they are the
// answer without fetching: some match, or the last fetch was less than
// minRefetch ago.
func (k *remoteKeys) cached(kid string) ([]jose.JSONWebKey, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	keys := match(k.keys, kid)
	if len(keys) > 0 {
		return keys, true
	}
	if k.fetched && k.now().Sub(k.fetchedAt) < k.minRefetch {
		return nil, true
	}
	return nil, false
}

func match(keys []jose.JSONWebKey, kid string) []jose.JSONWebKey {
	var out []jose.JSONWebKey
	for _, key := range keys {
		if kid == "" || key.KeyID == kid {
			out = append(out, key)
		}
	}
	return out
}
