package credentials

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/delivery"
	"github.com/keygate/keygate/policy"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/rotation"
)

// MaxGrace is the longest grace period a rotation may give the old key.
const MaxGrace = 7 * 24 * time.Hour

// RotateRequest asks for a rotation.
type RotateRequest struct {
	// Credential is a key id, or "current".
	Credential string
	Grace      time.Duration
	// Deliver is the caller's deliver argument ("" for the default).
	Deliver string
}

// RotatePlan is a rotation the policy allowed, with where the new secret
// will go, before anything changed: a dry run shows it, a confirmation
// prompt describes it, and Rotate carries it out.
type RotatePlan struct {
	ring   Ring
	caller Caller
	req    rotation.Request
	// Key is the key to rotate (on a remote provider only its id is known).
	Key provider.Key
	// Own: it is keygate's own credential, whose successor goes back
	// where it is and which keygate switches to.
	Own  bool
	Dest delivery.Spec
}

// Grace is the grace period the old key will get.
func (p RotatePlan) Grace() time.Duration { return p.req.Grace }

// PlanRotate decides whether the caller may rotate the key and where its
// successor goes, and changes nothing.
//
// keygate's own credential (the env file's KEYGATE_TOKEN, or its Agrenting
// key) always goes back to the variable that holds it, and keygate follows
// it. A session's own key, rotated with no destination, stays in that
// session only. Any other key's successor goes to the caller's destination
// (the keys directory by default): no session that authenticated with the
// old key is handed the new one.
func (s *Service) PlanRotate(ctx context.Context, c Caller, r Ring, req RotateRequest) (RotatePlan, error) {
	if req.Grace < 0 || req.Grace > MaxGrace {
		return RotatePlan{}, &provider.FieldError{Field: "grace_seconds", Problem: "out of range", Fix: "use 0 to 604800"}
	}
	if r.Engine == nil {
		return RotatePlan{}, errUnsupported(r, "rotate")
	}
	id, viaCurrent, key, err := s.authorizeRotate(ctx, c, r, req.Credential)
	if err != nil {
		return RotatePlan{}, err
	}
	own, err := ownCredential(ctx, r, id, viaCurrent)
	if err != nil {
		return RotatePlan{}, err
	}
	p := RotatePlan{ring: r, caller: c, Key: key, Own: own != nil}
	if p.req, err = s.rotationRequest(c, r, id, own, req); err != nil {
		return RotatePlan{}, err
	}
	p.Dest = p.req.Dest
	return p, nil
}

// authorizeRotate resolves the credential argument to a key and asks the
// policy whether the caller may rotate it. viaCurrent reports that the
// caller named it "current".
func (s *Service) authorizeRotate(ctx context.Context, c Caller, r Ring, credential string) (id string, viaCurrent bool, key provider.Key, err error) {
	a, err := s.Actor(ctx, c)
	if err != nil {
		return "", false, provider.Key{}, err
	}
	id, viaCurrent, err = s.ResolveKey(ctx, c, r, credential)
	if err != nil {
		return "", false, provider.Key{}, err
	}
	t, key, err := s.target(ctx, a, policy.Rotate, r, id)
	if err != nil {
		return "", false, provider.Key{}, err
	}
	// The policy decides before anything about the key is shown.
	if err := policy.Decide(a, policy.Rotate, t).Err(); err != nil {
		return "", false, provider.Key{}, err
	}
	return id, viaCurrent, key, nil
}

// ownCredential is keygate's own credential when key id is it, else nil.
// On a remote provider "current" means keygate's own key even when the
// provider cannot name it.
func ownCredential(ctx context.Context, r Ring, id string, viaCurrent bool) (*Own, error) {
	if r.Own == nil {
		return nil, nil
	}
	own, ok, err := r.Own(ctx)
	if err != nil {
		return nil, err
	}
	if !ok || !((id != "" && own.KeyID == id) || (!r.Local && viaCurrent)) {
		return nil, nil
	}
	return &own, nil
}

// rotationRequest is the rotation to ask the engine for: where key id's
// successor goes, given whether it is keygate's own credential (own).
func (s *Service) rotationRequest(c Caller, r Ring, id string, own *Own, req RotateRequest) (rotation.Request, error) {
	switch {
	case own != nil && own.InEnvFile:
		return ownRotation(id, *own, req)
	case own != nil && req.Deliver == "":
		return rotation.Request{}, &provider.FieldError{Field: "credential",
			Problem: fmt.Sprintf("key %s is keygate's own credential, but %s comes from keygate's environment (a client's config, say), which keygate cannot rewrite", displayID(id), own.Var),
			Fix:     fmt.Sprintf("move %s into keygate's env file and restart keygate, then rotate again; or pass deliver and put the new key in the client's config yourself", own.Var)}
	case !r.Engine.RotatesOthers():
		return rotation.Request{}, &provider.FieldError{Field: "credential",
			Problem: fmt.Sprintf("%s can rotate a key only with that key itself, so keygate can rotate only its own %s key", r.Provider, r.Provider),
			Fix:     `pass credential "current" to rotate keygate's own key; rotate other keys in the provider's dashboard`}
	}
	dest, err := s.destination(c, id, req.Deliver)
	if err != nil {
		return rotation.Request{}, err
	}
	if err := s.Places.Preflight(dest); err != nil {
		return rotation.Request{}, err
	}
	return rotation.Request{KeyID: id, Dest: dest, Grace: req.Grace}, nil
}

// ownRotation rotates keygate's own credential from its env file: the
// successor goes back to the variable that holds it, and keygate follows.
func ownRotation(id string, own Own, req RotateRequest) (rotation.Request, error) {
	if req.Deliver != "" && req.Deliver != "env:"+own.Var {
		return rotation.Request{}, &provider.FieldError{Field: "deliver",
			Problem: fmt.Sprintf("key %s is keygate's own credential (%s in its env file), whose successor must go back there so keygate keeps working", displayID(id), own.Var),
			Fix:     "leave deliver out"}
	}
	rq := rotation.Own(own.Var, own.Secret, req.Grace, own.Follow)
	rq.KeyID = id
	return rq, nil
}

// destination is where the successor of key id goes when it is not
// keygate's own credential.
func (s *Service) destination(c Caller, id, arg string) (delivery.Spec, error) {
	ownSession := c.Principal != nil && c.Principal.KeyID == id && c.Cred.Source == auth.SourceSession && c.SetSession != nil
	switch {
	case arg == "session" && !ownSession:
		return delivery.Spec{}, &provider.FieldError{Field: "deliver",
			Problem: "session delivery keeps the new key in the calling session, so it is only for the key that session authenticated with (auth_authenticate)",
			Fix:     delivery.Fix}
	case arg == "" && ownSession:
		return delivery.Spec{Kind: delivery.Session}, nil
	}
	return s.Places.Parse(arg)
}

func displayID(id string) string {
	if id == "" {
		return "(the one in use)"
	}
	return id
}

// Rotated is a finished rotation.
type Rotated struct {
	RotationID string
	OldKeyID   string
	New        provider.Key
	// Secret is the new secret; shown only when Delivered is a reveal.
	Secret     auth.Secret
	Delivered  delivery.Spec
	OldStopsAt time.Time
	// Followed: keygate itself, or the calling session, switched to the
	// new key.
	Followed bool
	// Warning is a step after the delivery that failed; recovery finishes
	// it at the next start.
	Warning string
	// Removed and RemoveErr are as in Revoked: the delivered copies of
	// keys the rotation revoked.
	Removed   []string
	RemoveErr error
}

// Rotate carries out a plan through the journaled rotation engine.
func (s *Service) Rotate(ctx context.Context, p RotatePlan) (Rotated, error) {
	eng := p.ring.Engine
	res, err := eng.Rotate(ctx, p.req)
	if !res.NewSecret.IsZero() {
		s.learn(res.NewSecret)
	}
	if res.RotationID != "" {
		s.changed()
	}
	var pe *rotation.PreflightError
	var se *rotation.ScopeError
	switch {
	case err == nil:
	case errors.As(err, &pe):
		problem := pe.Problem
		if pe.Err != nil {
			problem += ": " + pe.Err.Error()
		}
		return Rotated{}, &provider.FieldError{Field: "credential", Problem: problem, Fix: pe.Fix}
	case errors.Is(err, rotation.ErrInProgress):
		return Rotated{}, &provider.FieldError{Field: "credential", Problem: "another rotation of this key is in progress", Fix: "wait for it to finish, then check with credentials_list"}
	case errors.Is(err, rotation.ErrUnfinished):
		rep, rerr := eng.RecoverSlot(ctx, eng.Slot(p.req))
		if rerr != nil {
			return Rotated{}, fmt.Errorf("settling an unfinished rotation: %w", rerr)
		}
		return Rotated{}, &provider.FieldError{Field: "credential", Problem: "an earlier rotation was unfinished and has now been settled: " + rep.Summary(), Fix: "call credentials_rotate again"}
	case errors.As(err, &se):
		return Rotated{}, &provider.FieldError{Field: "credential", Problem: "the new key did not verify with the same scopes (" + se.Error() + "), so it was discarded and the old key kept",
			Fix: "check the key's scopes with credentials_list and rotate again"}
	case errors.Is(err, rotation.ErrSwapFailed):
		return Rotated{}, &provider.FieldError{Field: "deliver", Problem: "the new key could not be written to " + p.Dest.String() + " (" + err.Error() + "); it is kept in keygate's pending file and the old key still works",
			Fix: "fix the destination (disk space, permissions) and restart keygate, which finishes the rotation"}
	case res.New.ID == "":
		return Rotated{}, err
	}
	out := Rotated{RotationID: res.RotationID, OldKeyID: res.OldKeyID, New: res.New, Secret: res.NewSecret, Delivered: res.Delivered,
		OldStopsAt: res.OldStopsAt, Followed: p.Own && p.req.Follow != nil}
	if err != nil {
		// The delivery happened; what failed came after it (retiring the
		// old key, say), and the engine finishes it at the next start.
		out.Warning = err.Error()
	}
	if p.ring.Local && err == nil {
		// A rotation without grace revoked the old key: its delivered
		// copies go as a revocation's do.
		out.Removed, out.RemoveErr = s.sweepRevoked(ctx)
	}
	if res.Delivered.Kind == delivery.Session {
		out.Followed = p.caller.SetSession(auth.Credential{Secret: res.NewSecret, Source: auth.SourceSession})
	}
	return out, nil
}
