//go:build unix

// Package rotationtest provides a fake key-issuing platform for testing the
// rotation engine against provider behaviour keygate's own store does not
// have, such as Agrenting's: the old key dies the moment the new one is
// created, and a create repeated with the same idempotency key replays the
// original response.
package rotationtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/internal/atomicfile"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/rotation"
)

// Options sets how the fake platform behaves.
type Options struct {
	// RevokesOldOnCreate kills the old key when the new one is created.
	RevokesOldOnCreate bool
	// CreateReplays makes Create idempotent by rotation id: a repeat
	// returns the first key and secret, like an idempotency-key replay.
	CreateReplays bool
	// DropScope is left out of every new key, like a platform that issues
	// the wrong scopes.
	DropScope string
	// LoseCreateResponse makes a Create that issues a key fail anyway, like
	// a timeout after the platform acted. A replay is answered.
	LoseCreateResponse bool
	// Sessions makes the platform a rotation.Replayer, like Agrenting: a
	// replayed create must authenticate, and only a session token opened
	// with the old key (which outlives the key) can once the old key is
	// dead. Use Platform.Backend to get the Replayer.
	Sessions bool
	// SessionsDieWithKey ends a key's sessions when the key is revoked, so
	// no replay can succeed once the old key is dead.
	SessionsDieWithKey bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Platform is the fake. Its state lives in one JSON file, locked for each
// call, so a keygate process killed mid-rotation and the test that checks on
// it afterwards see the same keys.
type Platform struct {
	path string
	opts Options
}

var _ rotation.Backend = (*Platform)(nil)

type fakeKey struct {
	ID         string    `json:"id"`
	Secret     string    `json:"secret"`
	Scopes     []string  `json:"scopes"`
	RotationID string    `json:"rotation_id,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
}

type fakeSession struct {
	Token string `json:"token"`
	KeyID string `json:"key_id"`
	Ended bool   `json:"ended,omitempty"`
}

type platformState struct {
	Keys     []fakeKey     `json:"keys"`
	Sessions []fakeSession `json:"sessions,omitempty"`
}

// Open returns the platform whose state is in path (created on first write).
func Open(path string, opts Options) *Platform {
	return &Platform{path: path, opts: opts}
}

func (p *Platform) now() time.Time {
	if p.opts.Now != nil {
		return p.opts.Now()
	}
	return time.Now()
}

// Mint issues a key outside any rotation, as a person would in a dashboard.
func (p *Platform) Mint(scopes ...string) (auth.Secret, provider.Key, error) {
	var k fakeKey
	err := p.update(func(st *platformState) error {
		var err error
		k, err = newKey(scopes, "", p.now())
		st.Keys = append(st.Keys, k)
		return err
	})
	return auth.NewSecret(k.Secret), k.view(), err
}

// Keys returns every key the platform has issued.
func (p *Platform) Keys() ([]provider.Key, error) {
	var out []provider.Key
	err := p.read(func(st *platformState) error {
		for _, k := range st.Keys {
			out = append(out, k.view())
		}
		return nil
	})
	return out, err
}

// Verify accepts a live key's secret.
func (p *Platform) Verify(_ context.Context, secret auth.Secret) (rotation.Holder, error) {
	var h rotation.Holder
	err := p.read(func(st *platformState) error {
		k := st.bySecret(secret.Reveal())
		if k == nil || !k.live(p.now()) {
			return auth.ErrInvalidToken
		}
		h = rotation.Holder{KeyID: k.ID, Scopes: slices.Clone(k.Scopes), CanCreate: true}
		return nil
	})
	return h, err
}

// Create issues the successor of req.OldKeyID, authenticated by req.Old.
func (p *Platform) Create(_ context.Context, req rotation.CreateRequest) (provider.IssuedKey, error) {
	var out provider.IssuedKey
	made := false
	err := p.update(func(st *platformState) error {
		if k := st.byRotation(req.RotationID); k != nil {
			if !p.opts.CreateReplays {
				return fmt.Errorf("rotation %s has already made key %s", req.RotationID, k.ID)
			}
			if p.opts.Sessions && st.liveSession(req.Replay.Reveal()) == nil {
				return fmt.Errorf("replaying rotation %s: %w", req.RotationID, auth.ErrInvalidToken)
			}
			out = provider.IssuedKey{Key: k.view(), Secret: auth.NewSecret(k.Secret)}
			return nil
		}
		caller := st.bySecret(req.Old.Reveal())
		if caller == nil || !caller.live(p.now()) || caller.ID != req.OldKeyID {
			return fmt.Errorf("creating key: %w", auth.ErrInvalidToken)
		}
		scopes := slices.DeleteFunc(slices.Clone(caller.Scopes), func(s string) bool { return s == p.opts.DropScope })
		k, err := newKey(scopes, req.RotationID, p.now())
		if err != nil {
			return err
		}
		k.ExpiresAt = caller.ExpiresAt
		if p.opts.RevokesOldOnCreate {
			caller.RevokedAt = p.now()
			if p.opts.SessionsDieWithKey {
				for i := range st.Sessions {
					if st.Sessions[i].KeyID == caller.ID {
						st.Sessions[i].Ended = true
					}
				}
			}
		}
		st.Keys = append(st.Keys, k)
		out, made = provider.IssuedKey{Key: k.view(), Secret: auth.NewSecret(k.Secret)}, true
		return nil
	})
	if made && p.opts.LoseCreateResponse {
		return provider.IssuedKey{}, errors.New("creating key: timeout awaiting response headers")
	}
	return out, err
}

// Retire ends a key at once or after grace, never later than it would have.
func (p *Platform) Retire(_ context.Context, keyID string, grace time.Duration) (time.Time, error) {
	var stops time.Time
	err := p.update(func(st *platformState) error {
		k := st.byID(keyID)
		if k == nil {
			return &provider.NotFoundError{What: "key", Name: keyID}
		}
		now := p.now()
		switch {
		case !k.RevokedAt.IsZero():
			stops = k.RevokedAt
		case grace <= 0:
			k.RevokedAt, stops = now, now
		default:
			if end := now.Add(grace); k.ExpiresAt.IsZero() || end.Before(k.ExpiresAt) {
				k.ExpiresAt = end
			}
			stops = k.ExpiresAt
		}
		return nil
	})
	return stops, err
}

// Discard ends a key at once.
func (p *Platform) Discard(ctx context.Context, keyID string) error {
	_, err := p.Retire(ctx, keyID, 0)
	return err
}

// Tagged lists the keys one rotation made.
func (p *Platform) Tagged(_ context.Context, q rotation.TagQuery) ([]provider.Key, error) {
	var out []provider.Key
	err := p.read(func(st *platformState) error {
		for _, k := range st.Keys {
			if k.RotationID == q.RotationID {
				out = append(out, k.view())
			}
		}
		return nil
	})
	return out, err
}

// Backend returns the platform as the engine should see it: with Sessions,
// a rotation.Replayer.
func (p *Platform) Backend() rotation.Backend {
	if p.opts.Sessions {
		return sessionPlatform{p}
	}
	return p
}

// sessionPlatform is a Platform whose replays need a session token.
type sessionPlatform struct{ *Platform }

var _ rotation.Replayer = sessionPlatform{}

// OpenReplay opens a session with a live key; it outlives the key.
func (p sessionPlatform) OpenReplay(_ context.Context, old auth.Secret) (auth.Secret, error) {
	var tok string
	err := p.update(func(st *platformState) error {
		k := st.bySecret(old.Reveal())
		if k == nil || !k.live(p.now()) {
			return fmt.Errorf("opening a session: %w", auth.ErrInvalidToken)
		}
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		tok = "fs_" + hex.EncodeToString(b)
		st.Sessions = append(st.Sessions, fakeSession{Token: tok, KeyID: k.ID})
		return nil
	})
	return auth.NewSecret(tok), err
}

// CloseReplay ends a session.
func (p sessionPlatform) CloseReplay(_ context.Context, replay auth.Secret) error {
	return p.update(func(st *platformState) error {
		if ss := st.liveSession(replay.Reveal()); ss != nil {
			ss.Ended = true
		}
		return nil
	})
}

// LiveSessions counts the sessions not yet closed.
func (p *Platform) LiveSessions() (int, error) {
	n := 0
	err := p.read(func(st *platformState) error {
		for _, ss := range st.Sessions {
			if !ss.Ended {
				n++
			}
		}
		return nil
	})
	return n, err
}

// Traits reports the options the platform was opened with.
func (p *Platform) Traits() rotation.Traits {
	return rotation.Traits{RevokesOldOnCreate: p.opts.RevokesOldOnCreate, CreateReplays: p.opts.CreateReplays}
}

// update runs fn on the state under an exclusive flock and saves it
// atomically when fn succeeds.
func (p *Platform) update(fn func(*platformState) error) error { return p.locked(true, fn) }

// read runs fn on the state under the lock and saves nothing.
func (p *Platform) read(fn func(*platformState) error) error { return p.locked(false, fn) }

func (p *Platform) locked(write bool, fn func(*platformState) error) error {
	lf, err := os.OpenFile(p.path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	var st platformState
	b, err := os.ReadFile(p.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(b, &st); err != nil {
			return fmt.Errorf("fake platform state: %w", err)
		}
	}
	if err := fn(&st); err != nil || !write {
		return err
	}
	if b, err = json.Marshal(st); err != nil {
		return err
	}
	return atomicfile.Write(p.path, b)
}

func newKey(scopes []string, rotationID string, now time.Time) (fakeKey, error) {
	id, secret := make([]byte, 6), make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return fakeKey{}, err
	}
	if _, err := rand.Read(secret); err != nil {
		return fakeKey{}, err
	}
	idHex := hex.EncodeToString(id)
	return fakeKey{ID: idHex, Secret: "fk_" + idHex + "_" + hex.EncodeToString(secret), Scopes: scopes,
		RotationID: rotationID, CreatedAt: now}, nil
}

func (k *fakeKey) live(now time.Time) bool {
	return k.RevokedAt.IsZero() && (k.ExpiresAt.IsZero() || now.Before(k.ExpiresAt))
}

func (k fakeKey) view() provider.Key {
	return provider.Key{ID: k.ID, Name: "fake", Masked: auth.Mask(k.Secret), Scopes: slices.Clone(k.Scopes),
		CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt}
}

func (st *platformState) find(match func(*fakeKey) bool) *fakeKey {
	for i := range st.Keys {
		if match(&st.Keys[i]) {
			return &st.Keys[i]
		}
	}
	return nil
}

func (st *platformState) bySecret(s string) *fakeKey {
	if s == "" {
		return nil
	}
	return st.find(func(k *fakeKey) bool { return k.Secret == s })
}

func (st *platformState) byID(id string) *fakeKey {
	return st.find(func(k *fakeKey) bool { return k.ID == id })
}

func (st *platformState) byRotation(rid string) *fakeKey {
	if rid == "" {
		return nil
	}
	return st.find(func(k *fakeKey) bool { return k.RotationID == rid })
}

func (st *platformState) liveSession(tok string) *fakeSession {
	for i := range st.Sessions {
		if tok != "" && st.Sessions[i].Token == tok && !st.Sessions[i].Ended {
			return &st.Sessions[i]
		}
	}
	return nil
}
