package authserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/keygate/keygate/provider/local"
)

// signingAlg is the one algorithm access tokens are signed with: ECDSA
// P-256 (RFC 7518 section 3.4), short keys and signatures, supported by
// every JOSE library.
const signingAlg = jose.ES256

// keyReload is how often the keyring rereads the store, so a key rotated by
// another process sharing the store is seen.
const keyReload = time.Minute

// keyring holds the signing keys: generated on first start and kept in the
// store, rotated every rotateEvery; a retired key keeps verifying for
// keepFor, longer than any token it signed can live. Private keys never
// leave it except to sign.
type keyring struct {
	store       KeyStore
	now         func() time.Time
	rotateEvery time.Duration
	keepFor     time.Duration

	mu       sync.Mutex
	keys     []signingKey // the active key first
	loadedAt time.Time
}

type signingKey struct {
	id        string
	private   *ecdsa.PrivateKey
	createdAt time.Time
	retired   bool
}

// String keeps the private key out of any print.
func (k signingKey) String() string { return "signing key " + k.id }

// op.SigningKey
func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return signingAlg }
func (k signingKey) Key() any                                    { return k.private }
func (k signingKey) ID() string                                  { return k.id }

// publicKey is an op.Key: what the JWKS publishes.
type publicKey struct {
	id  string
	pub *ecdsa.PublicKey
}

func (k publicKey) ID() string                         { return k.id }
func (k publicKey) Algorithm() jose.SignatureAlgorithm { return signingAlg }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return k.pub }

func newKeyring(store KeyStore, now func() time.Time, rotateEvery, keepFor time.Duration) *keyring {
	return &keyring{store: store, now: now, rotateEvery: rotateEvery, keepFor: keepFor}
}

// current returns the keys, active first, rotating when the active key is
// older than rotateEvery.
func (k *keyring) current(ctx context.Context) ([]signingKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	fresh := len(k.keys) > 0 && !k.keys[0].retired && now.Sub(k.loadedAt) < keyReload &&
		now.Sub(k.keys[0].createdAt) < k.rotateEvery
	if fresh {
		return k.keys, nil
	}
	if err := k.loadLocked(ctx); err != nil {
		return nil, err
	}
	if len(k.keys) > 0 && !k.keys[0].retired && now.Sub(k.keys[0].createdAt) < k.rotateEvery {
		return k.keys, nil
	}
	if err := k.rotateLocked(ctx, now); err != nil {
		return nil, err
	}
	if err := k.loadLocked(ctx); err != nil {
		return nil, err
	}
	if len(k.keys) == 0 || k.keys[0].retired {
		return nil, errors.New("signing keys: no active key after rotation")
	}
	return k.keys, nil
}

func (k *keyring) loadLocked(ctx context.Context) error {
	stored, err := k.store.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	keys := make([]signingKey, 0, len(stored))
	for _, s := range stored {
		if s.Algorithm != string(signingAlg) {
			continue // a key of an algorithm this keygate does not sign with
		}
		parsed, err := x509.ParsePKCS8PrivateKey(s.PKCS8)
		if err != nil {
			return fmt.Errorf("signing key %s: %w", s.ID, err)
		}
		priv, ok := parsed.(*ecdsa.PrivateKey)
		if !ok {
			return fmt.Errorf("signing key %s: not an ECDSA key", s.ID)
		}
		keys = append(keys, signingKey{id: s.ID, private: priv, createdAt: s.CreatedAt, retired: !s.RetiredAt.IsZero()})
	}
	k.keys, k.loadedAt = keys, k.now()
	return nil
}

func (k *keyring) rotateLocked(ctx context.Context, now time.Time) error {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("signing keys: generating: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("signing keys: encoding: %w", err)
	}
	id := strings.ToLower(rand.Text())[:16]
	_, err = k.store.RotateSigningKey(ctx, local.SigningKey{ID: id, Algorithm: string(signingAlg), PKCS8: der},
		now.Add(-k.rotateEvery), k.keepFor)
	if err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	return nil
}

// active returns the key to sign with.
func (k *keyring) active(ctx context.Context) (op.SigningKey, error) {
	keys, err := k.current(ctx)
	if err != nil {
		return nil, err
	}
	return keys[0], nil
}

// public returns the public halves of every key that still verifies.
func (k *keyring) public(ctx context.Context) ([]op.Key, error) {
	keys, err := k.current(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]op.Key, len(keys))
	for i, s := range keys {
		out[i] = publicKey{id: s.id, pub: &s.private.PublicKey}
	}
	return out, nil
}

// verificationKey returns the public key with id kid, if it still verifies.
func (k *keyring) verificationKey(ctx context.Context, kid string) (*ecdsa.PublicKey, bool, error) {
	keys, err := k.current(ctx)
	if err != nil {
		return nil, false, err
	}
	for _, s := range keys {
		if s.id == kid {
			return &s.private.PublicKey, true, nil
		}
	}
	return nil, false, nil
}
