package agrenting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/rotation"
)

// RotationBackend lets keygate's rotation engine rotate the agent key this
// client uses (AGRENTING_API_KEY in the env file), with Agrenting's
// documented self-rotation, POST /auth/rotate-key: the caller's own key is
// revoked at once and a new one returned (docs/providers/agrenting.md,
// "Keys"). It needs no list endpoint: keys are named by their secret
// (keyID), and a key is checked with the documented GET /ledger/balance.
//
// The old key dies as the new one is issued, so a crash between the
// answer and the env file's fsync would leave keygate with no working key.
// Two things close that gap. The rotate request carries the rotation id as
// its X-Idempotency-Key and is authenticated by a session token opened
// with the old key beforehand (kept by the engine in its 0600 pending
// file): after a crash, recovery sends the same request with the same
// session and Agrenting replays the original answer, new key included. And
// the answer, whose shape is not documented, is handed to the engine
// (CreateRequest.Keep) before it is parsed, so a shape keygate did not
// expect, or a crash before the parse, loses nothing: Reparse finds the key
// in the kept answer.
//
// unknown: whether a session token outlives the key that opened it.
// Agrenting documents only its TTL and logout; the fake keeps sessions
// alive by default. If the platform ends them with the key, a lost answer
// cannot be replayed (401), and recovery reports the key lost, saying to
// revoke the one Agrenting issued in the dashboard.
type RotationBackend struct {
	c *Client
}

var (
	_ rotation.Replayer = RotationBackend{}
	_ rotation.Reparser = RotationBackend{}
)

// RotationBackend returns the client's rotation backend.
func (c *Client) RotationBackend() RotationBackend { return RotationBackend{c: c} }

// Traits: the old key dies at create, and a create with the same rotation
// id (the idempotency key) is replayed for 24 hours.
func (RotationBackend) Traits() rotation.Traits {
	return rotation.Traits{RevokesOldOnCreate: true, CreateReplays: true}
}

// replayCredential is what OpenReplay hands the engine, encoded: the
// session and the agent it acts for, which recovery cannot learn any more
// once the old key is dead.
type replayCredential struct {
	AgentID string `json:"agent_id"`
	Session string `json:"session"`
}

func (b RotationBackend) decodeReplay(s auth.Secret) (replayCredential, error) {
	var rc replayCredential
	if err := json.Unmarshal([]byte(s.Reveal()), &rc); err != nil || rc.AgentID == "" || rc.Session == "" {
		return rc, errors.New("agrenting: the rotation's replay credential is not one keygate wrote")
	}
	b.c.redact.Add(rc.Session)
	b.c.learnAgent(rc.AgentID)
	return rc, nil
}

// refused marks an answer that says the credential does not work, for the
// engine: a 401 is definitive.
func refused(err error) error {
	if errors.Is(err, provider.ErrUnauthorized) {
		return fmt.Errorf("%w: %w", auth.ErrInvalidToken, err)
	}
	return err
}

// Verify checks secret with a harmless read, GET /ledger/balance (the
// official client's own connection test), and names it by keyID. Agent
// keys carry the agent's permissions, not scopes, and may rotate
// themselves.
func (b RotationBackend) Verify(ctx context.Context, secret auth.Secret) (rotation.Holder, error) {
	if _, err := b.c.do(ctx, call{method: http.MethodGet, path: "/ledger/balance", asKey: secret}); err != nil {
		return rotation.Holder{}, refused(err)
	}
	b.c.remember(secret)
	return rotation.Holder{KeyID: keyID(secret.Reveal()), Scopes: []string{}, CanCreate: true}, nil
}

// OpenReplay opens a session with the old key (POST /auth/authenticate).
func (b RotationBackend) OpenReplay(ctx context.Context, old auth.Secret) (auth.Secret, error) {
	res, err := b.c.do(ctx, call{method: http.MethodPost, path: "/auth/authenticate", idemKey: newIdempotencyKey(), asKey: old})
	if err != nil {
		return auth.Secret{}, fmt.Errorf("agrenting: opening a session: %w", refused(err))
	}
	var a authAnswer
	if err := json.Unmarshal(res.env.Data, &a); err != nil || a.Token == "" || a.Agent.ID == "" {
		return auth.Secret{}, errors.New("agrenting: opening a session: the answer has no token or agent")
	}
	b.c.redact.Add(a.Token)
	b.c.learnAgent(a.Agent.ID)
	enc, err := json.Marshal(replayCredential{AgentID: a.Agent.ID, Session: a.Token})
	if err != nil {
		return auth.Secret{}, err
	}
	return auth.NewSecret(string(enc)), nil
}

// CloseReplay logs the session out: DELETE /auth/logout, which "requires
// the X-API-Key header", sent with the key the client uses now (the new
// one, once the rotation went through) and the session as Bearer, to name
// which session ends.
func (b RotationBackend) CloseReplay(ctx context.Context, replay auth.Secret) error {
	rc, err := b.decodeReplay(replay)
	if err != nil {
		return err
	}
	key := b.c.CurrentKey()
	if key.IsZero() {
		return errors.New("agrenting: logging the rotation's session out needs an agent key; the session ends with its TTL")
	}
	if _, err := b.c.do(ctx, call{method: http.MethodDelete, path: "/auth/logout", asKey: key, asSession: auth.NewSecret(rc.Session)}); err != nil {
		return fmt.Errorf("agrenting: logging the rotation's session out (it ends with its TTL): %w", err)
	}
	return nil
}

// Create rotates the key that opened the replay session: POST
// /auth/rotate-key with the session as Bearer (the docs' example
// authenticates with Authorization: Bearer) and the rotation id as
// X-Idempotency-Key. The first request and any replay are the same request,
// so the platform can replay the first answer whichever credential it ties
// the idempotency record to. The answer is kept (req.Keep) before keygate
// looks for the key in it.
func (b RotationBackend) Create(ctx context.Context, req rotation.CreateRequest) (provider.IssuedKey, error) {
	if req.Replay.IsZero() {
		return provider.IssuedKey{}, fmt.Errorf("agrenting: rotation %s has no session to rotate with", req.RotationID)
	}
	rc, err := b.decodeReplay(req.Replay)
	if err != nil {
		return provider.IssuedKey{}, err
	}
	res, err := b.c.do(ctx, call{method: http.MethodPost, path: RotateKeyPath, idemKey: req.RotationID, asSession: auth.NewSecret(rc.Session)})
	if res.status >= 200 && res.status <= 299 && len(res.raw) > 0 {
		// Agrenting has issued a key and revoked the old one: keep the
		// answer before anything can go wrong with it.
		var keepErr error
		if req.Keep != nil {
			keepErr = req.Keep(res.raw)
		}
		issued, perr := b.issued(res.raw)
		if perr == nil {
			return issued, nil // the engine persists it next, even if Keep failed
		}
		return provider.IssuedKey{}, errors.Join(fmt.Errorf("agrenting: %w: POST %s answered %d, and %w; the answer is kept in keygate's rotation pending file",
			provider.ErrOutcomeUnknown, RotateKeyPath, res.status, perr), keepErr, err)
	}
	if err == nil {
		err = fmt.Errorf("agrenting: %w: POST %s answered %d with nothing", provider.ErrOutcomeUnknown, RotateKeyPath, res.status)
	}
	// A replay: recovery's (which holds no old key), or a resend of a
	// request whose answer was lost.
	replay := req.Old.IsZero() || res.sends > 1
	return provider.IssuedKey{}, b.c.rotateError(err, res, replay)
}

// Reparse finds the new key in a kept rotate-key answer.
func (b RotationBackend) Reparse(raw []byte) (provider.IssuedKey, error) {
	return b.issued(raw)
}

// issued finds the new key in a rotate-key answer (findIssued) and names
// it by keyID, as Verify does.
func (b RotationBackend) issued(raw []byte) (provider.IssuedKey, error) {
	f, err := findIssued(raw, b.c.CurrentKey().Reveal())
	if err != nil {
		return provider.IssuedKey{}, fmt.Errorf("keygate found no new key in it (%s)", b.c.clean(err.Error()))
	}
	secret := auth.NewSecret(f.secret)
	b.c.remember(secret)
	return provider.IssuedKey{Key: provider.Key{ID: keyID(f.secret), Name: b.c.clean(f.name), Masked: auth.Mask(f.secret), Scopes: []string{},
		CreatedAt: b.c.now().UTC()}, Secret: secret}, nil
}

// rotateError explains a failed rotate-key request; replay says it may
// have been a repeat of one Agrenting carried out.
func (c *Client) rotateError(err error, res result, replay bool) error {
	ue, ok := errors.AsType[*provider.UpstreamError](err)
	if !ok || ue.Status == 0 {
		return err // no answer
	}
	switch {
	case ue.Status == http.StatusUnauthorized && replay:
		ue.Message += fmt.Sprintf(" (the session that replays POST %s was refused, so a key Agrenting issued for this rotation cannot be collected: revoke the agent's newest key in the Agrenting dashboard)", RotateKeyPath)
		return refused(ue)
	case ue.Status == http.StatusUnauthorized:
		ue.Message += fmt.Sprintf(" (keygate sends POST %s with a session token opened with the key, so that a crash cannot lose the new key; the docs' example authenticates with a Bearer token)", RotateKeyPath)
		return refused(ue)
	case ue.Status == http.StatusNotFound && ue.Code == "ROUTE_NOT_FOUND":
		ue.Kind = provider.ErrUnsupported
		ue.Message += fmt.Sprintf(" (POST %s is Agrenting's documented rotation endpoint; rotate the key in the dashboard)", RotateKeyPath)
		return ue
	}
	return c.writeError(ue, res.env, nil)
}

// Retire reports the old key ended: POST /auth/rotate-key revoked it as it
// issued the new one ("The old key is immediately revoked"). There is no
// grace period to give. When the client still holds the old secret it
// checks that the key is refused, and says so if it is not.
func (b RotationBackend) Retire(ctx context.Context, id string, _ time.Duration) (time.Time, error) {
	if secret, ok := b.c.knownSecret(id); ok {
		_, err := b.c.do(ctx, call{method: http.MethodGet, path: "/ledger/balance", asKey: secret})
		if err == nil {
			return time.Time{}, fmt.Errorf("agrenting: key %s still works after POST %s, which revokes it; revoke it in the Agrenting dashboard", id, RotateKeyPath)
		}
		if !errors.Is(err, provider.ErrUnauthorized) {
			return time.Time{}, err
		}
	}
	return b.c.now().UTC(), nil
}

// Discard ends key id, one a rotation made and abandons. A key that no
// longer works has ended. One that works can be revoked only through the
// undocumented list and revoke path, and only while the client holds its
// secret (to find it in the list); otherwise the error says to revoke it in
// the dashboard.
func (b RotationBackend) Discard(ctx context.Context, id string) error {
	secret, ok := b.c.knownSecret(id)
	if !ok {
		return fmt.Errorf("agrenting: keygate no longer holds key %s's secret and Agrenting documents no way to revoke a key by id: revoke it in the Agrenting dashboard", id)
	}
	_, err := b.Verify(ctx, secret)
	switch {
	case errors.Is(err, auth.ErrInvalidToken):
		return nil
	case err != nil:
		return err
	}
	_, _, err = b.c.RevokeKey(ctx, id)
	return err
}

// Tagged returns nothing: Agrenting cannot tag keys, and finding the key a
// rotation made would need the undocumented list. The replayed rotate-key
// and the kept answer are how keygate finds it instead.
func (RotationBackend) Tagged(context.Context, rotation.TagQuery) ([]provider.Key, error) {
	return nil, nil
}
