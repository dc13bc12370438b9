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
// client uses (AGRENTING_API_KEY in the env file).
//
// Agrenting revokes the old key the moment it issues the new one, so a
// crash between its answer and the env file's fsync would leave keygate
// with no working key. The backend closes that gap with the platform's
// idempotency replay: the rotate request carries the rotation id as its
// X-Idempotency-Key, and is authenticated by a session token opened with
// the old key before the create (kept by the engine in its 0600 pending
// file). After a crash, recovery sends the same request with the same
// session and Agrenting replays the original answer, new key included.
//
// unknown: whether a session token outlives the key that opened it.
// Agrenting documents only its TTL and logout; the fake keeps sessions
// alive. If the platform ends them with the key, a replay is refused
// (401), and recovery reports the key lost and revokes what it can find,
// rather than waiting forever.
type RotationBackend struct {
	c *Client
}

var _ rotation.Replayer = RotationBackend{}

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

// Verify lists the agent's credentials with secret and finds the one it is.
func (b RotationBackend) Verify(ctx context.Context, secret auth.Secret) (rotation.Holder, error) {
	agent, err := b.c.agent(ctx)
	if err != nil {
		return rotation.Holder{}, refused(err)
	}
	list, err := b.c.listCredentialsAs(ctx, agent, call{asKey: secret})
	if err != nil {
		return rotation.Holder{}, refused(err)
	}
	for _, cj := range list {
		if cj.RevokedAt == nil && cj.matches(secret.Reveal()) {
			// Agent keys carry the agent's permissions, not scopes.
			return rotation.Holder{KeyID: cj.ID, Scopes: []string{}, CanCreate: true}, nil
		}
	}
	return rotation.Holder{}, fmt.Errorf("agrenting: the key works but is not among agent %s's credentials", agent)
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

// CloseReplay logs the session out (DELETE /auth/logout).
func (b RotationBackend) CloseReplay(ctx context.Context, replay auth.Secret) error {
	rc, err := b.decodeReplay(replay)
	if err != nil {
		return err
	}
	_, err = b.c.do(ctx, call{method: http.MethodDelete, path: "/auth/logout", asSession: auth.NewSecret(rc.Session)})
	if errors.Is(err, provider.ErrUnauthorized) {
		return nil // already over
	}
	return err
}

// Create rotates req.OldKeyID with the rotation id as idempotency key, so
// the same call after a crash replays the first answer.
func (b RotationBackend) Create(ctx context.Context, req rotation.CreateRequest) (provider.IssuedKey, error) {
	cl := call{method: http.MethodPost, body: map[string]any{}, idemKey: req.RotationID}
	agent := ""
	if req.Replay.IsZero() {
		if req.Old.IsZero() {
			return provider.IssuedKey{}, fmt.Errorf("agrenting: replaying rotation %s: %w: no credential to replay it with", req.RotationID, auth.ErrInvalidToken)
		}
		var err error
		if agent, err = b.c.agent(ctx); err != nil {
			return provider.IssuedKey{}, err
		}
		cl.asKey = req.Old
	} else {
		rc, err := b.decodeReplay(req.Replay)
		if err != nil {
			return provider.IssuedKey{}, err
		}
		agent, cl.asSession = rc.AgentID, auth.NewSecret(rc.Session)
	}
	cl.path = expandPath(b.c.cfg.RotatePath, agent, req.OldKeyID)
	res, err := b.c.do(ctx, cl)
	if err != nil {
		return provider.IssuedKey{}, refused(b.c.rotateError(err, res, req.OldKeyID))
	}
	return b.c.issued(res)
}

// Retire revokes keyID unless it already is (Agrenting revoked it at the
// create), and says when it stopped. There is no grace period to give.
func (b RotationBackend) Retire(ctx context.Context, keyID string, _ time.Duration) (time.Time, error) {
	cj, err := b.c.findCredential(ctx, keyID)
	if err != nil {
		return time.Time{}, err
	}
	if cj.RevokedAt != nil {
		return parseTime(cj.RevokedAt), nil
	}
	agent, err := b.c.agent(ctx)
	if err != nil {
		return time.Time{}, err
	}
	k, err := b.c.revoke(ctx, agent, keyID)
	return k.RevokedAt, err
}

// Discard ends keyID; a key that is gone counts as ended.
func (b RotationBackend) Discard(ctx context.Context, keyID string) error {
	_, err := b.Retire(ctx, keyID, 0)
	var nf *provider.NotFoundError
	if errors.As(err, &nf) {
		return nil
	}
	return err
}

// Tagged finds the key that replaced q.OldKeyID (its rotated_to): Agrenting
// cannot tag keys, and a rotation makes exactly that one. With a replay
// credential it asks with the session, which works when the keys do not.
func (b RotationBackend) Tagged(ctx context.Context, q rotation.TagQuery) ([]provider.Key, error) {
	if q.OldKeyID == "" {
		return nil, nil
	}
	var list []credentialJSON
	err := provider.ErrUnauthorized
	if !q.Replay.IsZero() {
		rc, derr := b.decodeReplay(q.Replay)
		if derr != nil {
			return nil, derr
		}
		list, err = b.c.listCredentialsAs(ctx, rc.AgentID, call{asSession: auth.NewSecret(rc.Session)})
	}
	if errors.Is(err, provider.ErrUnauthorized) {
		// No session, or it ended: the client's own key may work.
		list, err = b.c.listCredentials(ctx)
	}
	if err != nil {
		return nil, refused(err)
	}
	successor := ""
	for _, cj := range list {
		if cj.ID == q.OldKeyID && cj.RotatedTo != nil {
			successor = *cj.RotatedTo
		}
	}
	for _, cj := range list {
		if successor != "" && cj.ID == successor {
			return []provider.Key{cj.key()}, nil
		}
	}
	return nil, nil
}
