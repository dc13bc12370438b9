package rotation

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/local"
)

// Backend is the provider side of a rotation: whoever issues the credential
// keygate keeps in its env file. The engine never depends on a provider
// package directly, so a remote provider plugs in with an adapter.
type Backend interface {
	// Verify makes a harmless authenticated read with secret and says whose
	// key it is. A refused secret (unknown, revoked, expired) gives an error
	// wrapping auth.ErrInvalidToken; any other error means "don't know", and
	// the engine then changes nothing.
	Verify(ctx context.Context, secret auth.Secret) (Holder, error)
	// Create issues the successor of req.OldKeyID with the same scopes,
	// tagged with req.RotationID so Tagged finds it. A backend with
	// Traits().CreateReplays must return the same key and secret when
	// called again with the same RotationID, even after the old key died
	// (an idempotency key whose response the provider replays). A replay
	// that the provider refuses to authenticate gives an error wrapping
	// auth.ErrInvalidToken: the engine then knows it can never succeed.
	Create(ctx context.Context, req CreateRequest) (provider.IssuedKey, error)
	// Retire makes key keyID stop working at now+grace at the latest (at
	// once for zero) without any further call, and says when it stops.
	// Calling it again must never extend the key's life.
	Retire(ctx context.Context, keyID string, grace time.Duration) (stopsAt time.Time, err error)
	// Revoke ends key keyID at once. Revoking a revoked key succeeds.
	Revoke(ctx context.Context, keyID string) error
	// Tagged lists the keys created by rotation q.RotationID, so keys
	// whose secret a crash lost can be found. A backend that cannot tag
	// keys may find them another way (the key that replaced q.OldKeyID);
	// one that cannot at all returns nil, nil, and recovery then revokes
	// only the keys it knows of.
	Tagged(ctx context.Context, q TagQuery) ([]provider.Key, error)
	// Traits says how the provider behaves.
	Traits() Traits
}

// Replayer is a Backend whose create can only be replayed with a credential
// that outlives the old key, because the provider revokes the old key as it
// creates the new one (Agrenting: a session token). The engine opens one
// before the create and keeps it in the 0600 pending file until the
// rotation is settled, so recovery after a crash can still replay the
// create and collect the new key.
type Replayer interface {
	// OpenReplay returns a credential, obtained with old, that keeps
	// working after the old key is revoked.
	OpenReplay(ctx context.Context, old auth.Secret) (auth.Secret, error)
	// CloseReplay ends it once the rotation is settled.
	CloseReplay(ctx context.Context, replay auth.Secret) error
}

// TagQuery asks a Backend for the keys one rotation made.
type TagQuery struct {
	RotationID string
	OldKeyID   string
	// Replay is the rotation's replay credential, if it has one: with a
	// Replayer whose old key is dead, it may be the only credential that
	// still works.
	Replay auth.Secret
}

// Holder is what Verify learns about a credential.
type Holder struct {
	KeyID  string
	Scopes []string
	// CanCreate reports that the key may create its own successor.
	CanCreate bool
}

// Traits describes provider behaviour the engine must plan around.
type Traits struct {
	// RevokesOldOnCreate: the provider kills the old key the moment it
	// issues the new one (Agrenting), so there is no overlap and a crash
	// before the env file is written must be resolved by adopting the new
	// key, never by rolling back.
	RevokesOldOnCreate bool
	// CreateReplays: Create with a known RotationID returns the original
	// key and secret again. With RevokesOldOnCreate, this is the only way
	// to recover from a crash between create and persist.
	CreateReplays bool
}

// CreateRequest asks a Backend for a successor key.
type CreateRequest struct {
	// Old is the credential being replaced. It is zero when recovery
	// replays a create after a restart: the engine never stores it.
	Old        auth.Secret
	OldKeyID   string
	RotationID string
	// Replay is the credential from Replayer.OpenReplay, for a Replayer.
	Replay auth.Secret
	// Actor authorises the rotation where the backend checks grants (the
	// local store); nil means the old key itself.
	Actor *auth.Principal
}

// LocalBackend is a Backend over keygate's embedded store.
type LocalBackend struct {
	Store *local.Store
}

var _ Backend = LocalBackend{}

// Verify checks secret against the store. It may create keys when it holds
// credentials:write (or admin).
func (b LocalBackend) Verify(ctx context.Context, secret auth.Secret) (Holder, error) {
	p, err := b.Store.Verify(ctx, secret.Reveal())
	if err != nil {
		return Holder{}, err
	}
	return Holder{KeyID: p.KeyID, Scopes: p.Scopes.Strings(), CanCreate: p.Scopes.AllowsSome(auth.CredentialsWrite)}, nil
}

// Create rotates the old key in one store transaction, tagged with the
// rotation id; the old key keeps working until Retire.
func (b LocalBackend) Create(ctx context.Context, req CreateRequest) (provider.IssuedKey, error) {
	actor := req.Actor
	if actor == nil {
		if req.Old.IsZero() {
			return provider.IssuedKey{}, errors.New("creating key: no credential to authorise it")
		}
		p, err := b.Store.Verify(ctx, req.Old.Reveal())
		if err != nil {
			return provider.IssuedKey{}, fmt.Errorf("creating key: checking the old key: %w", err)
		}
		actor = &p
	}
	issued, _, err := b.Store.RotateKeyTagged(ctx, actor, req.OldKeyID, req.RotationID)
	return issued, err
}

// Retire sets the old key's end; see local.Store.RetireKey.
func (b LocalBackend) Retire(ctx context.Context, keyID string, grace time.Duration) (time.Time, error) {
	k, err := b.Store.RetireKey(ctx, keyID, grace)
	if err != nil {
		return time.Time{}, err
	}
	if !k.RevokedAt.IsZero() {
		return k.RevokedAt, nil
	}
	return k.ExpiresAt, nil
}

// Revoke revokes a key at once.
func (b LocalBackend) Revoke(ctx context.Context, keyID string) error {
	_, _, err := b.Store.RevokeKey(ctx, nil, keyID)
	return err
}

// Tagged lists the keys of one rotation.
func (b LocalBackend) Tagged(ctx context.Context, q TagQuery) ([]provider.Key, error) {
	return b.Store.KeysByRotation(ctx, q.RotationID)
}

// Traits: the store keeps the old key working until it is retired, and
// refuses a second key for a rotation id instead of replaying the first.
func (LocalBackend) Traits() Traits { return Traits{} }
