package local

import (
	"context"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/rotation"
)

// RotationBackend lets the rotation engine rotate the store's keys: keygate's
// own credential and anyone else's. Whether a caller may rotate a key is
// decided before the engine is asked (package policy).
func (s *Store) RotationBackend() rotation.Backend { return rotationBackend{s: s} }

type rotationBackend struct{ s *Store }

var (
	_ rotation.Backend     = rotationBackend{}
	_ rotation.StateReader = rotationBackend{}
)

// Verify checks secret against the store. It may create keys when it holds
// credentials:write (or admin).
func (b rotationBackend) Verify(ctx context.Context, secret auth.Secret) (rotation.Holder, error) {
	p, err := b.s.Verify(ctx, secret.Reveal())
	if err != nil {
		return rotation.Holder{}, err
	}
	return rotation.Holder{KeyID: p.KeyID, Scopes: p.Scopes.Strings(), CanCreate: p.Scopes.AllowsSome(auth.CredentialsWrite)}, nil
}

// KeyState describes key id: its scopes, and whether it works now.
func (b rotationBackend) KeyState(ctx context.Context, id string) (rotation.Holder, bool, error) {
	k, err := b.s.GetKey(ctx, id)
	if err != nil {
		return rotation.Holder{}, false, err
	}
	now := b.s.now()
	return rotation.Holder{KeyID: k.ID, Scopes: k.Scopes}, !isRevoked(k, now) && !isExpired(k, now), nil
}

// Create rotates the old key in one store transaction, tagged with the
// rotation id; the old key keeps working until Retire.
func (b rotationBackend) Create(ctx context.Context, req rotation.CreateRequest) (provider.IssuedKey, error) {
	return b.s.RotateKey(ctx, req.OldKeyID, req.RotationID)
}

// Retire sets the old key's end; see Store.RetireKey.
func (b rotationBackend) Retire(ctx context.Context, keyID string, grace time.Duration) (time.Time, error) {
	k, err := b.s.RetireKey(ctx, keyID, grace)
	if err != nil {
		return time.Time{}, err
	}
	if !k.RevokedAt.IsZero() {
		return k.RevokedAt, nil
	}
	return k.ExpiresAt, nil
}

// Discard undoes the rotation that made keyID; see Store.DiscardSuccessor.
func (b rotationBackend) Discard(ctx context.Context, keyID string) error {
	return b.s.DiscardSuccessor(ctx, keyID)
}

// Tagged lists the keys of one rotation.
func (b rotationBackend) Tagged(ctx context.Context, q rotation.TagQuery) ([]provider.Key, error) {
	return b.s.KeysByRotation(ctx, q.RotationID)
}

// Traits: the store keeps the old key working until it is retired, and
// refuses a second key for a rotation id instead of replaying the first.
func (rotationBackend) Traits() rotation.Traits { return rotation.Traits{} }
