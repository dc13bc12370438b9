package local

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/keygate/keygate/provider"
)

// OAuthClient is a client registered through RFC 7591 dynamic registration.
// Registration needs no credential, so the store bounds what an anonymous
// caller can make it hold: ClientLimits.
type OAuthClient struct {
	ID           string
	Name         string
	SecretHash   []byte // SHA-256 of the client secret; nil for public clients
	AuthMethod   string // none, client_secret_basic or client_secret_post
	RedirectURIs []string
	CreatedAt    time.Time
}

// ClientLimits bound dynamic registration.
type ClientLimits struct {
	// MaxIdle is the most clients without a live grant the store keeps; a
	// registration beyond it is refused with ErrTooManyClients.
	MaxIdle int
	// IdleTTL is how long a client without a live grant is kept after it
	// registered; older ones are deleted by the next registration.
	IdleTTL time.Duration
}

// ErrTooManyClients refuses a registration while the store holds
// ClientLimits.MaxIdle clients without a live grant.
var ErrTooManyClients = errors.New("too many registered clients are waiting for a first grant")

// idleClientsWhere selects clients that hold no live grant at ?1.
const idleClientsWhere = `NOT EXISTS (SELECT 1 FROM oauth_grants g WHERE g.client_id = oauth_clients.id
	AND g.revoked_at IS NULL AND g.expires_at > ?1)`

// RegisterOAuthClient stores a dynamically registered client. It first
// deletes idle clients older than lim.IdleTTL, then refuses the new one if
// lim.MaxIdle idle clients remain.
func (s *Store) RegisterOAuthClient(ctx context.Context, c OAuthClient, lim ClientLimits) (OAuthClient, error) {
	now, nowN := s.nowNanos()
	if c.ID == "" || len(c.RedirectURIs) == 0 {
		return OAuthClient{}, &provider.FieldError{Field: "redirect_uris", Problem: "a client needs an id and at least one redirect URI", Fix: "send redirect_uris"}
	}
	for field, texts := range map[string][]string{"client_name": {c.Name}, "redirect_uris": c.RedirectURIs} {
		for _, text := range texts {
			if err := s.d.checkStorable(field, text); err != nil {
				return OAuthClient{}, err
			}
		}
	}
	uris, err := json.Marshal(c.RedirectURIs)
	if err != nil {
		return OAuthClient{}, fmt.Errorf("encoding redirect URIs: %w", err)
	}
	c.CreatedAt = now
	err = s.inWriteTx(ctx, func(tx querier) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM oauth_clients WHERE created_at <= ?2 AND `+idleClientsWhere,
			nowN, toNanos(now.Add(-lim.IdleTTL))); err != nil {
			return fmt.Errorf("deleting idle clients: %w", err)
		}
		var idle int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM oauth_clients WHERE `+idleClientsWhere, nowN).Scan(&idle); err != nil {
			return fmt.Errorf("counting idle clients: %w", err)
		}
		if idle >= lim.MaxIdle {
			return ErrTooManyClients
		}
		var secret any
		if c.SecretHash != nil {
			secret = c.SecretHash
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO oauth_clients (id, name, secret_hash, auth_method, redirect_uris, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			c.ID, c.Name, secret, c.AuthMethod, string(uris), nowN); err != nil {
			return fmt.Errorf("storing client: %w", err)
		}
		return nil
	})
	if err != nil {
		return OAuthClient{}, err
	}
	return c, nil
}

// GetOAuthClient returns a registered client.
func (s *Store) GetOAuthClient(ctx context.Context, id string) (OAuthClient, error) {
	var c OAuthClient
	var uris string
	var created int64
	err := s.ro.QueryRowContext(ctx, `SELECT id, name, secret_hash, auth_method, redirect_uris, created_at FROM oauth_clients WHERE id = ?`, id).
		Scan(&c.ID, &c.Name, &c.SecretHash, &c.AuthMethod, &uris, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return OAuthClient{}, &provider.NotFoundError{What: "client", Name: id}
	}
	if err != nil {
		return OAuthClient{}, fmt.Errorf("reading client %s: %w", id, err)
	}
	if err := json.Unmarshal([]byte(uris), &c.RedirectURIs); err != nil {
		return OAuthClient{}, fmt.Errorf("redirect URIs of client %s: %w", id, err)
	}
	c.CreatedAt = fromNanos(created)
	return c, nil
}

// CountOAuthClients counts the registered clients, and those without a
// live grant.
func (s *Store) CountOAuthClients(ctx context.Context) (all, idle int, err error) {
	_, nowN := s.nowNanos()
	err = s.ro.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(CASE WHEN `+idleClientsWhere+` THEN 1 ELSE 0 END), 0) FROM oauth_clients`, nowN).Scan(&all, &idle)
	if err != nil {
		return 0, 0, fmt.Errorf("counting clients: %w", err)
	}
	return all, idle, nil
}
