package rotation

import (
	"context"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/delivery"
	"github.com/keygate/keygate/provider"
)

// Backend is the provider side of a rotation: whoever issues the credential
// being rotated. The engine never imports a provider package; each provider
// that can rotate keys implements this beside its client
// (local.Store.RotationBackend, agrenting.Client.RotationBackend).
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
	// A backend whose answer might not parse calls req.Keep with the raw
	// answer first (see Reparser).
	Create(ctx context.Context, req CreateRequest) (provider.IssuedKey, error)
	// Retire makes key keyID stop working at now+grace at the latest (at
	// once for zero) without any further call, and says when it stops.
	// Calling it again must never extend the key's life.
	Retire(ctx context.Context, keyID string, grace time.Duration) (stopsAt time.Time, err error)
	// Discard ends key keyID, a key a rotation made and now abandons, at
	// once, leaving the key it was to replace as it was. Discarding a
	// revoked key succeeds.
	Discard(ctx context.Context, keyID string) error
	// Tagged lists the keys created by rotation q.RotationID, so keys
	// whose secret a crash lost can be found. A backend that cannot tag
	// keys may find them another way (the key that replaced q.OldKeyID);
	// one that cannot at all returns nil, nil, and recovery then discards
	// only the keys it knows of.
	Tagged(ctx context.Context, q TagQuery) ([]provider.Key, error)
	// Traits says how the provider behaves.
	Traits() Traits
}

// StateReader is a Backend that can describe a key from its id alone. The
// engine needs it to rotate a key whose secret keygate does not hold
// (anyone else's key): preflight learns the key's scopes from it, and
// recovery asks it whether the old key still works.
type StateReader interface {
	KeyState(ctx context.Context, keyID string) (h Holder, active bool, err error)
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

// Reparser is a Backend that hands the engine its raw create answer (via
// CreateRequest.Keep) before parsing it, because the answer's shape is not
// documented: the engine keeps it in the 0600 pending file, and recovery
// finds the new key in it again even when the first parse failed.
type Reparser interface {
	// Reparse finds the new key in a kept raw answer.
	Reparse(raw []byte) (provider.IssuedKey, error)
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
	// before the destination is written must be resolved by adopting the
	// new key, never by rolling back.
	RevokesOldOnCreate bool
	// CreateReplays: Create with a known RotationID returns the original
	// key and secret again. With RevokesOldOnCreate, this is the only way
	// to recover from a crash between create and persist.
	CreateReplays bool
}

// CreateRequest asks a Backend for a successor key.
type CreateRequest struct {
	// Old is the credential being replaced, when keygate holds it. It is
	// zero when recovery replays a create after a restart (the engine
	// never stores it) and when keygate rotates someone else's key.
	Old        auth.Secret
	OldKeyID   string
	RotationID string
	// Replay is the credential from Replayer.OpenReplay, for a Replayer.
	Replay auth.Secret
	// Keep stores a raw answer durably before the backend parses it. If
	// Keep fails, a backend that can still parse the answer returns the
	// key anyway (the engine persists it next); one that cannot returns
	// both errors. Nil during recovery, which keeps what it gets itself.
	Keep func(raw []byte) error
}

// Destinations puts a rotation's new secret where its request says.
// delivery.Places is the real one.
type Destinations interface {
	Preflight(s delivery.Spec) error
	Put(s delivery.Spec, keyID string, secret auth.Secret) (delivery.Spec, error)
	Holds(s delivery.Spec, keyID string) (string, error)
}
