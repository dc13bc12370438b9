package local

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"
)

// SigningKey is a private key that signs OAuth access tokens, kept in the
// store (mode 0600, like the rest of it). Every way of printing it shows only
// its id, so it cannot reach a log line.
type SigningKey struct {
	ID        string
	Algorithm string // a JWS alg, such as ES256
	// PKCS8 is the private key, PKCS #8 DER.
	PKCS8     []byte
	CreatedAt time.Time
	// RetiredAt is when the key stopped signing; zero for the active key.
	RetiredAt time.Time
	// DropAt is when a retired key stops verifying and leaves the JWKS.
	DropAt time.Time
}

func (k SigningKey) String() string             { return "signing key " + k.ID }
func (k SigningKey) GoString() string           { return k.String() }
func (k SigningKey) LogValue() slog.Value       { return slog.StringValue(k.String()) }
func (k SigningKey) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }

// SigningKeys returns the keys that still verify, the active one first.
func (s *Store) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	_, nowN := s.nowNanos()
	rows, err := s.ro.QueryContext(ctx, `SELECT id, algorithm, private_key, created_at, retired_at, drop_at FROM oauth_signing_keys
		WHERE drop_at IS NULL OR drop_at > ? ORDER BY retired_at IS NOT NULL, created_at DESC, id`, nowN)
	if err != nil {
		return nil, fmt.Errorf("reading signing keys: %w", err)
	}
	defer rows.Close()
	var out []SigningKey
	for rows.Next() {
		var k SigningKey
		var created int64
		var retired, drop sql.NullInt64
		if err := rows.Scan(&k.ID, &k.Algorithm, &k.PKCS8, &created, &retired, &drop); err != nil {
			return nil, fmt.Errorf("reading signing keys: %w", err)
		}
		k.CreatedAt, k.RetiredAt, k.DropAt = fromNanos(created), fromNullNanos(retired), fromNullNanos(drop)
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading signing keys: %w", err)
	}
	return out, nil
}

// RotateSigningKey makes fresh the active signing key unless an active key
// created after rotateBefore exists, in which case it changes nothing and
// reports false. The keys it replaces stop signing now and keep verifying
// for keepFor, long enough for every token they signed to expire; keys past
// that are deleted. Run in one transaction, two processes racing to rotate
// add one key between them.
func (s *Store) RotateSigningKey(ctx context.Context, fresh SigningKey, rotateBefore time.Time, keepFor time.Duration) (bool, error) {
	now, nowN := s.nowNanos()
	rotated := false
	err := s.inWriteTx(ctx, func(tx querier) error {
		rotated = false
		var recent int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM oauth_signing_keys WHERE retired_at IS NULL AND created_at > ?`,
			toNanos(rotateBefore)).Scan(&recent); err != nil {
			return fmt.Errorf("reading signing keys: %w", err)
		}
		if recent > 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE oauth_signing_keys SET retired_at = ?1, drop_at = ?2 WHERE retired_at IS NULL`,
			nowN, toNanos(now.Add(keepFor))); err != nil {
			return fmt.Errorf("retiring signing keys: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM oauth_signing_keys WHERE drop_at IS NOT NULL AND drop_at <= ?`, nowN); err != nil {
			return fmt.Errorf("deleting old signing keys: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO oauth_signing_keys (id, algorithm, private_key, created_at) VALUES (?, ?, ?, ?)`,
			fresh.ID, fresh.Algorithm, fresh.PKCS8, nowN); err != nil {
			return fmt.Errorf("storing signing key: %w", err)
		}
		rotated = true
		return nil
	})
	return rotated, err
}
