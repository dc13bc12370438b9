package authserver

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/keygate/keygate/provider/local"
)

// authRequest is an authorization request from its arrival to the exchange
// of its code. It lives in memory only: a restart ends the flows under way,
// which the clients start again.
type authRequest struct {
	id           string
	createdAt    time.Time
	clientID     string
	clientName   string
	redirectURI  string
	state        string
	responseType oidc.ResponseType
	responseMode oidc.ResponseMode
	challenge    oidc.CodeChallenge
	resource     string
	scopes       []string // keygate scopes asked for; after consent, those granted
	csrf         string   // the consent form's token
	failures     int      // wrong keygate tokens entered on the consent page

	// After consent:
	done        bool
	grant       local.Grant
	codeHash    [32]byte
	codeExpires time.Time
	exchanged   bool
}

// op.AuthRequest, on a copy taken under the lock.
func (a authRequest) GetID() string                         { return a.id }
func (a authRequest) GetACR() string                        { return "" }
func (a authRequest) GetAMR() []string                      { return nil }
func (a authRequest) GetAudience() []string                 { return []string{a.resource} }
func (a authRequest) GetAuthTime() time.Time                { return a.grant.CreatedAt }
func (a authRequest) GetClientID() string                   { return a.clientID }
func (a authRequest) GetCodeChallenge() *oidc.CodeChallenge { c := a.challenge; return &c }
func (a authRequest) GetNonce() string                      { return "" }
func (a authRequest) GetRedirectURI() string                { return a.redirectURI }
func (a authRequest) GetResponseType() oidc.ResponseType    { return a.responseType }
func (a authRequest) GetResponseMode() oidc.ResponseMode    { return a.responseMode }
func (a authRequest) GetScopes() []string                   { return a.scopes }
func (a authRequest) GetState() string                      { return a.state }
func (a authRequest) GetSubject() string                    { return a.grant.ID }
func (a authRequest) Done() bool                            { return a.done }

// Errors of pending.
var (
	errPendingFull    = errors.New("too many authorization requests are waiting; try again in a few minutes")
	errUnknownCode    = errors.New("unknown or expired authorization code")
	errCodeReplayed   = errors.New("authorization code used twice")
	errUnknownRequest = errors.New("unknown or expired authorization request")
)

// pending holds authorization requests, at most max at once. A request
// waits ttl for consent; its code is good for codeTTL, after which the
// request is forgotten. A code that was exchanged is remembered until then,
// so its reuse can be detected.
type pending struct {
	now     func() time.Time
	max     int
	ttl     time.Duration
	codeTTL time.Duration

	mu     sync.Mutex
	byID   map[string]*authRequest
	byCode map[[32]byte]string
}

func newPending(now func() time.Time, max int, ttl, codeTTL time.Duration) *pending {
	return &pending{now: now, max: max, ttl: ttl, codeTTL: codeTTL,
		byID: map[string]*authRequest{}, byCode: map[[32]byte]string{}}
}

func (p *pending) expiredLocked(a *authRequest, now time.Time) bool {
	if !a.codeExpires.IsZero() {
		return !now.Before(a.codeExpires)
	}
	return !now.Before(a.createdAt.Add(p.ttl))
}

func (p *pending) deleteLocked(a *authRequest) {
	delete(p.byID, a.id)
	if !a.codeExpires.IsZero() {
		delete(p.byCode, a.codeHash)
	}
}

// add stores a new request, giving it its id and consent token.
func (p *pending) add(a authRequest) (authRequest, error) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.byID) >= p.max {
		for _, old := range p.byID {
			if p.expiredLocked(old, now) {
				p.deleteLocked(old)
			}
		}
	}
	if len(p.byID) >= p.max {
		return authRequest{}, errPendingFull
	}
	a.id = strings.ToLower(rand.Text())
	a.csrf = rand.Text() + rand.Text()
	a.createdAt = now
	p.byID[a.id] = &a
	return a, nil
}

// get returns a copy of request id while it is waiting for consent.
func (p *pending) get(id string) (authRequest, bool) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.byID[id]
	if !ok {
		return authRequest{}, false
	}
	if p.expiredLocked(a, now) {
		p.deleteLocked(a)
		return authRequest{}, false
	}
	return *a, true
}

// update changes request id under the lock, while it waits for consent.
func (p *pending) update(id string, fn func(a *authRequest) error) (authRequest, error) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.byID[id]
	if !ok || p.expiredLocked(a, now) || a.done {
		if ok && p.expiredLocked(a, now) {
			p.deleteLocked(a)
		}
		return authRequest{}, errUnknownRequest
	}
	if err := fn(a); err != nil {
		return *a, err
	}
	return *a, nil
}

// remove forgets request id.
func (p *pending) remove(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, ok := p.byID[id]; ok {
		p.deleteLocked(a)
	}
}

func codeHash(code string) [32]byte { return sha256.Sum256([]byte(code)) }

// saveCode records the code issued for a consented request; only its hash
// is kept.
func (p *pending) saveCode(id, code string) error {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.byID[id]
	if !ok || !a.done || !a.codeExpires.IsZero() || p.expiredLocked(a, now) {
		return errUnknownRequest
	}
	a.codeHash, a.codeExpires = codeHash(code), now.Add(p.codeTTL)
	p.byCode[a.codeHash] = id
	return nil
}

// byCodeHash returns the request a code was issued for, while the code is
// valid, whether or not it has been exchanged.
func (p *pending) byCodeHash(h [32]byte) (authRequest, error) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	id, ok := p.byCode[h]
	if !ok {
		return authRequest{}, errUnknownCode
	}
	a := p.byID[id]
	if p.expiredLocked(a, now) {
		p.deleteLocked(a)
		return authRequest{}, errUnknownCode
	}
	if a.exchanged {
		return *a, errCodeReplayed
	}
	return *a, nil
}

// exchange marks the code of request id used. A second call for the same
// request reports errCodeReplayed: only one exchange can win.
func (p *pending) exchange(id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.byID[id]
	if !ok {
		return errUnknownCode
	}
	if a.exchanged {
		return errCodeReplayed
	}
	a.exchanged = true
	return nil
}

// size is the number of requests held.
func (p *pending) size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.byID)
}
