package local

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
)

// An OAuth grant is what a person approved on the consent page: one client
// may act with some of the scopes of the key the person signed in with, until
// the grant expires or is revoked. keygate treats a grant as a credential
// (docs/oauth.md, "Grants"): it is listed, revoked, and it ends with the key
// that approved it, since revocation of a key is final.

// Bounds on grants.
const (
	// MaxLiveGrantsPerKey bounds the live grants one key may approve, so a
	// key cannot fill the store with grants (policy.MaxLiveChildren bounds
	// the keys it may create in the same way).
	MaxLiveGrantsPerKey = 64
	// endedGrantRetention is how long a revoked or expired grant stays
	// listed before CreateGrant deletes it with its refresh tokens.
	endedGrantRetention = 30 * 24 * time.Hour
	// maxRefreshGenerations bounds the refresh tokens kept per grant: the
	// current one and the latest used ones, whose reuse revokes the grant.
	maxRefreshGenerations = 64
)

// Reasons a grant ended, as RevokeGrant records them.
const (
	GrantRevokedByUser     = "revoked"
	GrantRevokedKeyEnded   = "the key that approved it was revoked"
	GrantRevokedReuse      = "a refresh token was used twice"
	GrantRevokedCodeReplay = "an authorization code was used twice"
)

// ErrGrantEnded is returned for a grant that was revoked, has expired, or
// whose approving key no longer works.
var ErrGrantEnded = errors.New("the grant has ended")

// ErrRefreshTokenReused is returned when a refresh token that was already
// exchanged is presented again; the grant has then been revoked.
var ErrRefreshTokenReused = errors.New("refresh token reused: the grant has been revoked")

// Grant is a stored OAuth grant. It holds no secret.
type Grant struct {
	ID           string    `json:"id"`
	ClientID     string    `json:"client_id"`
	ClientName   string    `json:"client_name"`
	RedirectHost string    `json:"redirect_host"`
	Resource     string    `json:"resource"`
	Scopes       []string  `json:"scopes"`
	ApprovedBy   string    `json:"approved_by"` // the key id the person signed in with
	CreatedAt    time.Time `json:"created_at"`
	ExpiresAt    time.Time `json:"expires_at"`
	LastUsedAt   time.Time `json:"last_used_at,omitzero"`
	RevokedAt    time.Time `json:"revoked_at,omitzero"`
	// RevokedReason says why the grant ended early.
	RevokedReason string `json:"revoked_reason,omitempty"`
}

// NewGrant is what CreateGrant stores.
type NewGrant struct {
	ClientID     string
	ClientName   string
	RedirectHost string
	Resource     string
	Scopes       auth.Scopes
	ApprovedBy   string
	ExpiresAt    time.Time
}

const grantColumns = "id, client_id, client_name, redirect_host, resource, scopes, approved_by, created_at, expires_at, last_used_at, revoked_at, revoked_reason"

func scanGrant(r scanner) (Grant, error) {
	var g Grant
	var scopes string
	var created, expires int64
	var lastUsed, revoked sql.NullInt64
	if err := r.Scan(&g.ID, &g.ClientID, &g.ClientName, &g.RedirectHost, &g.Resource, &scopes, &g.ApprovedBy,
		&created, &expires, &lastUsed, &revoked, &g.RevokedReason); err != nil {
		return Grant{}, err
	}
	if err := json.Unmarshal([]byte(scopes), &g.Scopes); err != nil {
		return Grant{}, fmt.Errorf("scopes of grant %s: %w", g.ID, err)
	}
	g.CreatedAt, g.ExpiresAt = fromNanos(created), fromNanos(expires)
	g.LastUsedAt, g.RevokedAt = fromNullNanos(lastUsed), fromNullNanos(revoked)
	return g, nil
}

func getGrant(ctx context.Context, q querier, id string) (Grant, error) {
	g, err := scanGrant(q.QueryRowContext(ctx, `SELECT `+grantColumns+` FROM oauth_grants WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Grant{}, &provider.NotFoundError{What: "grant", Name: id}
	}
	if err != nil {
		return Grant{}, fmt.Errorf("reading grant %s: %w", id, err)
	}
	return g, nil
}

// approverChainCTE names, as "chain", the key that approved grant ?1 and
// the keys it was rotated into (rotation keeps the credential and replaces
// its secret; RevokeKey ends the whole chain). ?3 bounds the walk.
const approverChainCTE = `
	WITH RECURSIVE chain(id, depth) AS (
		SELECT approved_by, 0 FROM oauth_grants WHERE id = ?1
		UNION ALL
		SELECT k.rotated_to, c.depth + 1 FROM keys k JOIN chain c ON k.id = c.id
		WHERE k.rotated_to IS NOT NULL AND c.depth < ?3
	)`

// approverLive is true when some key of the chain works at ?2.
const approverLive = `EXISTS (SELECT 1 FROM keys WHERE id IN (SELECT id FROM chain)
		AND (revoked_at IS NULL OR revoked_at > ?2) AND expires_at > ?2)`

// approverLiveSQL answers whether the key that approved grant ?1 works at ?2.
const approverLiveSQL = approverChainCTE + ` SELECT ` + approverLive

// liveGrantSQL reads grant ?1 with whether its approving key works at ?2,
// in one statement: it runs on every request made with an access token.
const liveGrantSQL = approverChainCTE + ` SELECT ` + grantColumns + `, ` + approverLive + ` FROM oauth_grants WHERE id = ?1`

// grantState reads grant id and says whether it works at now. A grant whose
// approving key no longer works is reported ended with that reason, so the
// caller can record it.
func grantState(ctx context.Context, q querier, id string, now time.Time) (g Grant, live bool, keyEnded bool, err error) {
	return scanGrantState(q.QueryRowContext(ctx, liveGrantSQL, id, toNanos(now), maxLineage), id, now)
}

func scanGrantState(row scanner, id string, now time.Time) (g Grant, live bool, keyEnded bool, err error) {
	var approverOK bool
	g, err = scanGrant(scanFunc(func(dest ...any) error { return row.Scan(append(dest, &approverOK)...) }))
	if errors.Is(err, sql.ErrNoRows) {
		return Grant{}, false, false, &provider.NotFoundError{What: "grant", Name: id}
	}
	if err != nil {
		return Grant{}, false, false, fmt.Errorf("reading grant %s: %w", id, err)
	}
	if isGrantRevoked(g, now) || !now.Before(g.ExpiresAt) {
		return g, false, false, nil
	}
	return g, approverOK, !approverOK, nil
}

// scanFunc adapts a function to scanner.
type scanFunc func(dest ...any) error

func (f scanFunc) Scan(dest ...any) error { return f(dest...) }

func isGrantRevoked(g Grant, now time.Time) bool {
	return !g.RevokedAt.IsZero() && !g.RevokedAt.After(now)
}

// CreateGrant stores a grant the person approved. The consent page has
// already checked that the approving key covers the scopes and outlives the
// grant (auth.CheckGrant); the store checks that the key still works and
// holds fewer than MaxLiveGrantsPerKey live grants, and deletes grants that
// ended more than 30 days ago.
func (s *Store) CreateGrant(ctx context.Context, ng NewGrant) (Grant, error) {
	now, nowN := s.nowNanos()
	if len(ng.Scopes) == 0 {
		return Grant{}, &provider.FieldError{Field: "scopes", Problem: "a grant needs at least one scope", Fix: "tick at least one permission"}
	}
	if !ng.ExpiresAt.After(now) {
		return Grant{}, &provider.FieldError{Field: "expires_at", Problem: "the grant would already be expired", Fix: "use a key that has not expired"}
	}
	for field, text := range map[string]string{"client_name": ng.ClientName, "redirect_uri": ng.RedirectHost, "resource": ng.Resource} {
		if err := s.d.checkStorable(field, text); err != nil {
			return Grant{}, err
		}
	}
	scopes, err := json.Marshal(ng.Scopes.Strings())
	if err != nil {
		return Grant{}, fmt.Errorf("encoding grant scopes: %w", err)
	}
	g := Grant{ID: "gr_" + strings.ToLower(rand.Text())[:20], ClientID: ng.ClientID, ClientName: ng.ClientName,
		RedirectHost: ng.RedirectHost, Resource: ng.Resource, Scopes: ng.Scopes.Strings(), ApprovedBy: ng.ApprovedBy,
		CreatedAt: now, ExpiresAt: fromNanos(toNanos(ng.ExpiresAt))}
	err = s.inWriteTx(ctx, func(tx querier) error {
		k, err := getKey(ctx, tx, ng.ApprovedBy)
		if err != nil {
			return err
		}
		if isRevoked(k, now) || isExpired(k, now) {
			return &provider.FieldError{Field: "token", Problem: fmt.Sprintf("key %s no longer works", k.ID), Fix: "sign in with a key that works"}
		}
		var live int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM oauth_grants WHERE approved_by = ? AND revoked_at IS NULL AND expires_at > ?`,
			ng.ApprovedBy, nowN).Scan(&live); err != nil {
			return fmt.Errorf("counting the grants of key %s: %w", ng.ApprovedBy, err)
		}
		if live >= MaxLiveGrantsPerKey {
			return &provider.FieldError{Field: "token", Problem: fmt.Sprintf("key %s has already approved %d live grants, the most one key may have", ng.ApprovedBy, live),
				Fix: "revoke grants that are no longer needed"}
		}
		cutoff := toNanos(now.Add(-endedGrantRetention))
		if _, err := tx.ExecContext(ctx, `DELETE FROM oauth_grants WHERE (revoked_at IS NOT NULL AND revoked_at < ?1) OR expires_at < ?1`, cutoff); err != nil {
			return fmt.Errorf("deleting ended grants: %w", err)
		}
		_, err = tx.ExecContext(ctx, `
			INSERT INTO oauth_grants (id, client_id, client_name, redirect_host, resource, scopes, approved_by, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			g.ID, g.ClientID, g.ClientName, g.RedirectHost, g.Resource, string(scopes), g.ApprovedBy, nowN, toNanos(g.ExpiresAt))
		if err != nil {
			return fmt.Errorf("storing grant: %w", err)
		}
		return nil
	})
	if err != nil {
		return Grant{}, err
	}
	return g, nil
}

// GetGrant returns a grant, live or not.
func (s *Store) GetGrant(ctx context.Context, id string) (Grant, error) {
	return getGrant(ctx, s.ro, id)
}

// LiveGrant returns grant id if it works now, and ErrGrantEnded if it was
// revoked, has expired, or the key that approved it (and every key that key
// was rotated into) no longer works. In that last case the grant is
// revoked, so it stays ended whatever happens to keys later.
func (s *Store) LiveGrant(ctx context.Context, id string) (Grant, error) {
	now := s.now()
	st, err := s.liveGrant.get(ctx, s.d, s.roDB)
	if err != nil {
		return Grant{}, fmt.Errorf("reading grant %s: %w", id, err)
	}
	r := &row{d: s.d, tries: s.ro.tries(), run: func() *sql.Row { return st.QueryRowContext(ctx, id, toNanos(now), maxLineage) }}
	g, live, keyEnded, err := scanGrantState(r, id, now)
	if err != nil {
		return Grant{}, err
	}
	if keyEnded {
		if _, _, err := s.RevokeGrant(ctx, id, GrantRevokedKeyEnded); err != nil {
			return Grant{}, err
		}
	}
	if !live {
		return Grant{}, ErrGrantEnded
	}
	return g, nil
}

// GrantFilter selects grants for ListGrants; zero fields match every grant.
type GrantFilter struct {
	ApprovedBy string
	ClientID   string
}

// ListGrants returns grants, newest first, with those that have ended.
// Grants whose approving key no longer works are shown revoked.
func (s *Store) ListGrants(ctx context.Context, f GrantFilter) ([]Grant, error) {
	now, nowN := s.nowNanos()
	rows, err := s.ro.QueryContext(ctx, `SELECT `+grantColumns+` FROM oauth_grants
		WHERE (?1 = '' OR approved_by = ?1) AND (?2 = '' OR client_id = ?2)
		ORDER BY created_at DESC, id DESC`, f.ApprovedBy, f.ClientID)
	if err != nil {
		return nil, fmt.Errorf("listing grants: %w", err)
	}
	var out []Grant
	for rows.Next() {
		g, err := scanGrant(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("listing grants: %w", err)
		}
		out = append(out, g)
	}
	err = errors.Join(rows.Err(), rows.Close())
	if err != nil {
		return nil, fmt.Errorf("listing grants: %w", err)
	}
	for i, g := range out {
		if isGrantRevoked(g, now) || !now.Before(g.ExpiresAt) {
			continue
		}
		var approverLive bool
		if err := s.ro.QueryRowContext(ctx, approverLiveSQL, g.ID, nowN, maxLineage).Scan(&approverLive); err != nil {
			return nil, fmt.Errorf("checking the key that approved grant %s: %w", g.ID, err)
		}
		if !approverLive {
			if out[i], _, err = s.RevokeGrant(ctx, g.ID, GrantRevokedKeyEnded); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// RevokeGrant ends grant id at once: its access tokens stop working at
// their next use (the verifier checks the grant every time) and its refresh
// tokens are deleted. already reports that it had been revoked before;
// reason is kept only the first time.
func (s *Store) RevokeGrant(ctx context.Context, id, reason string) (g Grant, already bool, err error) {
	now, nowN := s.nowNanos()
	err = s.inWriteTx(ctx, func(tx querier) error {
		var err error
		if g, err = getGrant(ctx, tx, id); err != nil {
			return err
		}
		if already = isGrantRevoked(g, now); !already {
			if _, err := tx.ExecContext(ctx, `UPDATE oauth_grants SET revoked_at = ?, revoked_reason = ? WHERE id = ?`, nowN, reason, id); err != nil {
				return fmt.Errorf("revoking grant %s: %w", id, err)
			}
			g.RevokedAt, g.RevokedReason = now, reason
			if err := tx.d.notify(ctx, tx, id); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM oauth_refresh_tokens WHERE grant_id = ?`, id); err != nil {
			return fmt.Errorf("deleting the refresh tokens of grant %s: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return Grant{}, false, err
	}
	return g, already, nil
}

// TouchGrant records a use of grant id, at most once a minute, like the
// last use of a key. A failure is dropped: it is bookkeeping.
func (s *Store) TouchGrant(ctx context.Context, id string) {
	now := s.now()
	_, _ = s.rw.ExecContext(ctx, `UPDATE oauth_grants SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at <= ?)`,
		toNanos(now), id, toNanos(now.Add(-touchEvery)))
}

// RefreshToken is a stored refresh token: its hash, never the token.
type RefreshToken struct {
	GrantID    string
	Generation int
	CreatedAt  time.Time
	UsedAt     time.Time // zero while it is the grant's current token
}

// AddRefreshToken stores the first refresh token of a grant (the SHA-256 of
// it); later ones come from RotateRefreshToken.
func (s *Store) AddRefreshToken(ctx context.Context, grantID string, hash [32]byte) error {
	now, nowN := s.nowNanos()
	return s.inWriteTx(ctx, func(tx querier) error {
		_, live, _, err := grantState(ctx, tx, grantID, now)
		if err != nil {
			return err
		}
		if !live {
			return ErrGrantEnded
		}
		var gen int
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(generation), 0) + 1 FROM oauth_refresh_tokens WHERE grant_id = ?`, grantID).Scan(&gen); err != nil {
			return fmt.Errorf("numbering refresh token of grant %s: %w", grantID, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO oauth_refresh_tokens (hash, grant_id, generation, created_at) VALUES (?, ?, ?, ?)`,
			hash[:], grantID, gen, nowN); err != nil {
			return fmt.Errorf("storing refresh token of grant %s: %w", grantID, err)
		}
		return nil
	})
}

// LookupRefreshToken finds a refresh token by its hash.
func (s *Store) LookupRefreshToken(ctx context.Context, hash [32]byte) (RefreshToken, error) {
	var rt RefreshToken
	var created int64
	var used sql.NullInt64
	err := s.ro.QueryRowContext(ctx, `SELECT grant_id, generation, created_at, used_at FROM oauth_refresh_tokens WHERE hash = ?`, hash[:]).
		Scan(&rt.GrantID, &rt.Generation, &created, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return RefreshToken{}, &provider.NotFoundError{What: "refresh token", Name: "(hash)"}
	}
	if err != nil {
		return RefreshToken{}, fmt.Errorf("reading refresh token: %w", err)
	}
	rt.CreatedAt, rt.UsedAt = fromNanos(created), fromNullNanos(used)
	return rt, nil
}

// RotateRefreshToken exchanges the refresh token hashed old for the one
// hashed next, in one transaction. A token that was exchanged before is
// being replayed: by its thief or by the client it was stolen from, and
// keygate cannot tell which, so the whole grant is revoked
// (ErrRefreshTokenReused; OAuth 2.1 section 4.3.1). A grant that has ended
// gives ErrGrantEnded.
func (s *Store) RotateRefreshToken(ctx context.Context, old, next [32]byte) (RefreshToken, error) {
	now, nowN := s.nowNanos()
	var out RefreshToken
	var reused string
	err := s.inWriteTx(ctx, func(tx querier) error {
		out, reused = RefreshToken{}, ""
		var grantID string
		var gen int
		var used sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT grant_id, generation, used_at FROM oauth_refresh_tokens WHERE hash = ?`, old[:]).Scan(&grantID, &gen, &used)
		if errors.Is(err, sql.ErrNoRows) {
			return &provider.NotFoundError{What: "refresh token", Name: "(hash)"}
		}
		if err != nil {
			return fmt.Errorf("reading refresh token: %w", err)
		}
		if used.Valid {
			reused = grantID
			return nil
		}
		_, live, _, err := grantState(ctx, tx, grantID, now)
		if err != nil {
			return err
		}
		if !live {
			return ErrGrantEnded
		}
		if _, err := tx.ExecContext(ctx, `UPDATE oauth_refresh_tokens SET used_at = ? WHERE hash = ?`, nowN, old[:]); err != nil {
			return fmt.Errorf("retiring refresh token of grant %s: %w", grantID, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO oauth_refresh_tokens (hash, grant_id, generation, created_at) VALUES (?, ?, ?, ?)`,
			next[:], grantID, gen+1, nowN); err != nil {
			return fmt.Errorf("storing refresh token of grant %s: %w", grantID, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM oauth_refresh_tokens WHERE grant_id = ? AND generation <= ?`,
			grantID, gen+1-maxRefreshGenerations); err != nil {
			return fmt.Errorf("pruning refresh tokens of grant %s: %w", grantID, err)
		}
		out = RefreshToken{GrantID: grantID, Generation: gen + 1, CreatedAt: now}
		return nil
	})
	if err != nil {
		return RefreshToken{}, err
	}
	if reused != "" {
		if _, _, err := s.RevokeGrant(ctx, reused, GrantRevokedReuse); err != nil {
			return RefreshToken{}, err
		}
		return RefreshToken{GrantID: reused}, ErrRefreshTokenReused
	}
	return out, nil
}
