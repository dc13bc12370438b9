package local

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
)

const (
	maxKeyNameLen = 100
	// touchEvery limits how often Verify writes last_used_at: a key in
	// steady use costs one write a minute, not one per call.
	touchEvery = time.Minute
	// missingKeyDigest stands in for the stored digest when no key has the
	// token's id, so an unknown id costs the same comparison as a known one.
	missingKeyDigest = "keygate: no key has this id....."
)

const keyColumns = "id, name, masked, scopes, created_at, expires_at, last_used_at, revoked_at, created_by, rotated_to"

// rotationIDPattern is the shape of a rotation tag: short, and safe in any
// log line or error.
var rotationIDPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`) })

// CreateKey mints a key. With an actor (a key making a key) the new key must
// fit inside the actor's grant; without one (the admin CLI, first run) it
// may have any scopes.
func (s *Store) CreateKey(ctx context.Context, actor *auth.Principal, nk provider.NewKey) (provider.IssuedKey, error) {
	now, nowN := s.nowNanos()
	name := strings.TrimSpace(nk.Name)
	if name == "" || utf8.RuneCountInString(name) > maxKeyNameLen {
		return provider.IssuedKey{}, &provider.FieldError{Field: "name", Problem: fmt.Sprintf("must be 1 to %d characters", maxKeyNameLen), Fix: `say what the key is for, e.g. "ci-publisher"`}
	}
	scopes, err := auth.ParseScopes(nk.Scopes.Strings())
	if err != nil {
		return provider.IssuedKey{}, &provider.FieldError{Field: "scopes", Problem: err.Error(), Fix: "use scopes such as content:read or content:write:posts"}
	}
	if !nk.ExpiresAt.After(now) {
		return provider.IssuedKey{}, &provider.FieldError{Field: "expires_in_days", Problem: "the key would already be expired", Fix: "choose an expiry in the future"}
	}
	createdBy := ""
	if actor != nil {
		if err := auth.CheckGrant(*actor, scopes, nk.ExpiresAt); err != nil {
			return provider.IssuedKey{}, err
		}
		createdBy = actor.KeyID
	}
	tok, parsed, err := auth.NewToken()
	if err != nil {
		return provider.IssuedKey{}, fmt.Errorf("minting key: %w", err)
	}
	k := provider.Key{ID: parsed.PublicID, Name: name, Masked: auth.Mask(tok), Scopes: scopes.Strings(),
		CreatedAt: now, ExpiresAt: fromNanos(toNanos(nk.ExpiresAt)), CreatedBy: createdBy}
	if err := s.inWriteTx(ctx, func(tx *sql.Tx) error { return insertKey(ctx, tx, k, parsed, nowN, "") }); err != nil {
		return provider.IssuedKey{}, err
	}
	return provider.IssuedKey{Key: k, Secret: auth.NewSecret(tok)}, nil
}

// insertKey stores k with the SHA-256 of its secret: never the token itself.
// A non-empty rotationID tags the key with the rotation that made it.
func insertKey(ctx context.Context, tx *sql.Tx, k provider.Key, parsed auth.ParsedToken, now int64, rotationID string) error {
	scopes, err := json.Marshal(k.Scopes)
	if err != nil {
		return fmt.Errorf("encoding scopes of key %s: %w", k.ID, err)
	}
	hash := parsed.SecretHash()
	tag := sql.NullString{String: rotationID, Valid: rotationID != ""}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO keys (id, name, secret_hash, masked, scopes, created_at, expires_at, created_by, rotation_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.Name, hash[:], k.Masked, string(scopes), now, toNanos(k.ExpiresAt), k.CreatedBy, tag)
	if tag.Valid && isConstraint(err, sqlite3.SQLITE_CONSTRAINT_UNIQUE) {
		return &provider.FieldError{Field: "rotation_id", Problem: fmt.Sprintf("rotation %s has already made a key", rotationID),
			Fix: "find it with KeysByRotation instead of creating another"}
	}
	if err != nil {
		return fmt.Errorf("storing key %s: %w", k.ID, err)
	}
	return nil
}

// ListKeys returns every key, newest first.
func (s *Store) ListKeys(ctx context.Context) ([]provider.Key, error) {
	return s.queryKeys(ctx, "listing keys", `SELECT `+keyColumns+` FROM keys ORDER BY created_at DESC, id DESC`)
}

// KeysByRotation returns the keys tagged with rotationID by RotateKeyTagged,
// oldest first: at most one, since the tag is unique. Rotation recovery uses
// it to find a key whose secret a crash lost.
func (s *Store) KeysByRotation(ctx context.Context, rotationID string) ([]provider.Key, error) {
	return s.queryKeys(ctx, "listing keys of rotation "+rotationID,
		`SELECT `+keyColumns+` FROM keys WHERE rotation_id = ? ORDER BY created_at, id`, rotationID)
}

// queryKeys runs a SELECT of keyColumns; what says what failed.
func (s *Store) queryKeys(ctx context.Context, what, query string, args ...any) ([]provider.Key, error) {
	rows, err := s.ro.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []provider.Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// GetKey returns one key.
func (s *Store) GetKey(ctx context.Context, id string) (provider.Key, error) {
	return getKey(ctx, s.ro, id)
}

func getKey(ctx context.Context, q querier, id string) (provider.Key, error) {
	k, err := scanKey(q.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM keys WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return provider.Key{}, &provider.NotFoundError{What: "key", Name: id}
	}
	if err != nil {
		return provider.Key{}, fmt.Errorf("reading key %s: %w", id, err)
	}
	return k, nil
}

func scanKey(r scanner) (provider.Key, error) {
	var k provider.Key
	var scopes string
	var created, expires int64
	var lastUsed, revoked sql.NullInt64
	var rotatedTo sql.NullString
	if err := r.Scan(&k.ID, &k.Name, &k.Masked, &scopes, &created, &expires, &lastUsed, &revoked, &k.CreatedBy, &rotatedTo); err != nil {
		return provider.Key{}, err
	}
	if err := json.Unmarshal([]byte(scopes), &k.Scopes); err != nil {
		return provider.Key{}, fmt.Errorf("scopes of key %s: %w", k.ID, err)
	}
	k.CreatedAt, k.ExpiresAt = fromNanos(created), fromNanos(expires)
	k.LastUsedAt, k.RevokedAt = fromNullNanos(lastUsed), fromNullNanos(revoked)
	k.RotatedTo = rotatedTo.String
	return k, nil
}

func isRevoked(k provider.Key, now time.Time) bool {
	return !k.RevokedAt.IsZero() && !k.RevokedAt.After(now)
}

// isExpired treats the instant of expiry as expired.
func isExpired(k provider.Key, now time.Time) bool { return !now.Before(k.ExpiresAt) }

// Verify checks a token and returns whose it is. Every way a token can be
// wrong gives exactly auth.ErrInvalidToken, so callers cannot tell them
// apart; a store failure gives another error, and callers fail closed on it.
func (s *Store) Verify(ctx context.Context, token string) (auth.Principal, error) {
	parsed, _, err := auth.ParseToken(token)
	if err != nil {
		return auth.Principal{}, auth.ErrInvalidToken
	}
	var k provider.Key
	var scopes string
	var created, expires int64
	var lastUsed, revoked sql.NullInt64
	stored := []byte(missingKeyDigest)
	err = s.ro.QueryRowContext(ctx, `
		SELECT name, secret_hash, masked, scopes, created_at, expires_at, last_used_at, revoked_at, created_by
		FROM keys WHERE id = ?`, parsed.PublicID).
		Scan(&k.Name, &stored, &k.Masked, &scopes, &created, &expires, &lastUsed, &revoked, &k.CreatedBy)
	found := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return auth.Principal{}, fmt.Errorf("verifying token: reading key: %w", err)
	}
	presented := parsed.SecretHash()
	// Compare even when the id is unknown, so timing does not tell the two apart.
	if subtle.ConstantTimeCompare(stored, presented[:]) != 1 || !found {
		return auth.Principal{}, auth.ErrInvalidToken
	}
	k.ID, k.ExpiresAt, k.RevokedAt = parsed.PublicID, fromNanos(expires), fromNullNanos(revoked)
	now := s.now()
	if isRevoked(k, now) || isExpired(k, now) {
		return auth.Principal{}, auth.ErrInvalidToken
	}
	var names []string
	if err := json.Unmarshal([]byte(scopes), &names); err != nil {
		return auth.Principal{}, fmt.Errorf("verifying token: scopes of key %s: %w", k.ID, err)
	}
	granted, err := auth.ParseScopes(names)
	if err != nil {
		return auth.Principal{}, fmt.Errorf("verifying token: scopes of key %s: %w", k.ID, err)
	}
	last := fromNullNanos(lastUsed)
	if last.IsZero() || now.Sub(last) >= touchEvery {
		s.touch(ctx, k.ID, now)
	}
	return auth.Principal{KeyID: k.ID, Name: k.Name, Masked: k.Masked, Scopes: granted,
		CreatedAt: fromNanos(created), ExpiresAt: k.ExpiresAt, LastUsedAt: last, CreatedBy: k.CreatedBy}, nil
}

// touch records a use of key id. It is bookkeeping: a failure here must not
// fail a verification that succeeded, so the error is dropped. The WHERE
// clause keeps concurrent calls from writing more than once a minute.
func (s *Store) touch(ctx context.Context, id string, now time.Time) {
	_, _ = s.rw.ExecContext(ctx, `UPDATE keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at <= ?)`,
		toNanos(now), id, toNanos(now.Add(-touchEvery)))
}

// RevokeKey revokes key id at once, and every key it created, directly or
// through keys it created. It reports already=true, and changes nothing,
// when the key was revoked before. A key still in a rotation grace
// period is not revoked yet, so this ends it. With an actor, the actor's
// scopes must cover the key's: a narrow key cannot revoke a broader one.
func (s *Store) RevokeKey(ctx context.Context, actor *auth.Principal, id string) (provider.Key, bool, error) {
	now, nowN := s.nowNanos()
	var k provider.Key
	already := false
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		var err error
		if k, err = getKey(ctx, tx, id); err != nil {
			return err
		}
		if actor != nil {
			if err := checkCovers(*actor, k, "revoke"); err != nil {
				return err
			}
		}
		if isRevoked(k, now) {
			already = true
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE keys SET revoked_at = ? WHERE id = ?`, nowN, id); err != nil {
			return fmt.Errorf("revoking key %s: %w", id, err)
		}
		// Keys minted by this key, and by those, go with it: a holder must
		// not escape a revocation through keys it made (security.md 2).
		if _, err := tx.ExecContext(ctx, `
			WITH RECURSIVE descendants(id) AS (
				SELECT id FROM keys WHERE created_by = ?
				UNION SELECT k.id FROM keys k JOIN descendants d ON k.created_by = d.id
			)
			UPDATE keys SET revoked_at = ? WHERE id IN (SELECT id FROM descendants) AND revoked_at IS NULL`, id, nowN); err != nil {
			return fmt.Errorf("revoking the keys %s created: %w", id, err)
		}
		k.RevokedAt = now
		return nil
	})
	if err != nil {
		return provider.Key{}, false, err
	}
	return k, already, nil
}

// checkCovers refuses an actor whose scopes do not cover all of k's.
func checkCovers(actor auth.Principal, k provider.Key, verb string) error {
	scopes, err := auth.ParseScopes(k.Scopes)
	if err != nil {
		return fmt.Errorf("reading scopes of key %s: %w", k.ID, err)
	}
	if missing := actor.Scopes.Missing(scopes); len(missing) > 0 {
		return &auth.GrantError{Field: "credential", Problem: fmt.Sprintf(
			"your credential cannot %s a key with broader scopes: key %s holds %s, which yours (%s) does not cover",
			verb, k.ID, strings.Join(missing.Strings(), ", "), strings.Join(actor.Scopes.Strings(), ", ")),
			Fix: "use a credential whose scopes cover the key's, such as an admin key"}
	}
	return nil
}

// RotateKey issues the successor of key id: same name, same scopes and the
// same expires_at. Rotation replaces the secret, not the lifetime, so it can
// never be used to extend a key. The old key points to its successor
// (rotated_to). A negative grace leaves the old key otherwise as it was, for
// the caller to retire with RetireKey once the new secret is stored; grace
// >= 0 retires it here, as RetireKey does. It returns the new key with its
// secret and the old key as it now is.
//
// With an actor, the actor must cover the old key's scopes and must not
// expire before it: otherwise rotating would hand the actor a fresh secret
// to a key it could not have created.
func (s *Store) RotateKey(ctx context.Context, actor *auth.Principal, id string, grace time.Duration) (provider.IssuedKey, provider.Key, error) {
	return s.rotate(ctx, actor, id, grace, "")
}

// RotateKeyTagged is RotateKey for a journaled rotation (package rotation):
// the new key is tagged with rotationID, so KeysByRotation finds it even if
// the caller dies before it stores the secret, and the old key is left as it
// was, for RetireKey once the new secret is in place.
//
// It refuses a second key for the same rotationID, and an old key that
// already has a live successor, so two rotations of one key cannot both
// succeed (the compare-and-swap of security.md section 3). A successor that
// was revoked, as a rolled-back rotation leaves it, does not count.
func (s *Store) RotateKeyTagged(ctx context.Context, actor *auth.Principal, id, rotationID string) (provider.IssuedKey, provider.Key, error) {
	if !rotationIDPattern().MatchString(rotationID) {
		return provider.IssuedKey{}, provider.Key{}, &provider.FieldError{Field: "rotation_id", Problem: "must be 1 to 64 letters, digits, _ or -",
			Fix: "pass the id of the rotation's journal"}
	}
	return s.rotate(ctx, actor, id, -1, rotationID)
}

func (s *Store) rotate(ctx context.Context, actor *auth.Principal, id string, grace time.Duration, rotationID string) (provider.IssuedKey, provider.Key, error) {
	now, nowN := s.nowNanos()
	tok, parsed, err := auth.NewToken()
	if err != nil {
		return provider.IssuedKey{}, provider.Key{}, fmt.Errorf("minting key: %w", err)
	}
	var issued provider.IssuedKey
	var old provider.Key
	err = s.inWriteTx(ctx, func(tx *sql.Tx) error {
		var err error
		if old, err = getKey(ctx, tx, id); err != nil {
			return err
		}
		if err := checkRotatable(old, now); err != nil {
			return err
		}
		if rotationID != "" {
			if err := checkNoLiveSuccessor(ctx, tx, old, now); err != nil {
				return err
			}
		}
		// The successor is the same credential with a new secret: it keeps
		// the old key's parent, and the keys the old key created become
		// its children, so retiring the old key revokes none of them.
		createdBy := old.CreatedBy
		if actor != nil {
			if err := checkRotateGrant(*actor, old); err != nil {
				return err
			}
		}
		next := provider.Key{ID: parsed.PublicID, Name: old.Name, Masked: auth.Mask(tok), Scopes: old.Scopes,
			CreatedAt: now, ExpiresAt: old.ExpiresAt, CreatedBy: createdBy}
		if err := insertKey(ctx, tx, next, parsed, nowN, rotationID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE keys SET rotated_to = ? WHERE id = ?`, next.ID, id); err != nil {
			return fmt.Errorf("linking key %s to its successor: %w", id, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE keys SET created_by = ? WHERE created_by = ? AND id != ?`, next.ID, id, next.ID); err != nil {
			return fmt.Errorf("moving the keys %s created to its successor: %w", id, err)
		}
		old.RotatedTo = next.ID
		if grace >= 0 {
			if old, err = retire(ctx, tx, old, grace, now); err != nil {
				return err
			}
		}
		issued = provider.IssuedKey{Key: next, Secret: auth.NewSecret(tok)}
		return nil
	})
	if err != nil {
		return provider.IssuedKey{}, provider.Key{}, err
	}
	return issued, old, nil
}

func checkRotatable(k provider.Key, now time.Time) error {
	state := ""
	switch {
	case isRevoked(k, now):
		state = "revoked"
	case isExpired(k, now):
		state = "expired"
	default:
		return nil
	}
	return &provider.FieldError{Field: "credential", Problem: fmt.Sprintf("key %s is %s and cannot be rotated", k.ID, state),
		Fix: "create a new key with credentials_create"}
}

// checkNoLiveSuccessor refuses to rotate a key whose successor still works.
func checkNoLiveSuccessor(ctx context.Context, q querier, old provider.Key, now time.Time) error {
	if old.RotatedTo == "" {
		return nil
	}
	next, err := getKey(ctx, q, old.RotatedTo)
	if err != nil {
		return fmt.Errorf("reading successor of key %s: %w", old.ID, err)
	}
	if isRevoked(next, now) || isExpired(next, now) {
		return nil
	}
	return &provider.FieldError{Field: "credential", Problem: fmt.Sprintf("key %s has already been rotated to key %s, which is active", old.ID, next.ID),
		Fix: fmt.Sprintf("rotate key %s instead, or revoke it first", next.ID)}
}

func checkRotateGrant(actor auth.Principal, old provider.Key) error {
	if err := checkCovers(actor, old, "rotate"); err != nil {
		return err
	}
	if !actor.ExpiresAt.IsZero() && old.ExpiresAt.After(actor.ExpiresAt) {
		return &auth.GrantError{Field: "credential", Problem: fmt.Sprintf(
			"key %s expires %s, after your credential (%s), so your credential cannot rotate it",
			old.ID, old.ExpiresAt.Format(time.RFC3339), actor.ExpiresAt.UTC().Format(time.RFC3339)),
			Fix: "use a credential that lives at least as long as the key"}
	}
	return nil
}

// RetireKey ends key id: at once when grace is zero (or negative), else at
// the earlier of its expiry and now+grace. A revoked key stays as it is.
func (s *Store) RetireKey(ctx context.Context, id string, grace time.Duration) (provider.Key, error) {
	now, _ := s.nowNanos()
	var k provider.Key
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		var err error
		if k, err = getKey(ctx, tx, id); err != nil {
			return err
		}
		k, err = retire(ctx, tx, k, grace, now)
		return err
	})
	if err != nil {
		return provider.Key{}, err
	}
	return k, nil
}

func retire(ctx context.Context, tx *sql.Tx, k provider.Key, grace time.Duration, now time.Time) (provider.Key, error) {
	if isRevoked(k, now) {
		return k, nil
	}
	if grace <= 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE keys SET revoked_at = ? WHERE id = ?`, toNanos(now), k.ID); err != nil {
			return provider.Key{}, fmt.Errorf("retiring key %s: %w", k.ID, err)
		}
		k.RevokedAt = fromNanos(toNanos(now))
		return k, nil
	}
	end := fromNanos(toNanos(now.Add(grace)))
	if !end.Before(k.ExpiresAt) {
		return k, nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE keys SET expires_at = ? WHERE id = ?`, toNanos(end), k.ID); err != nil {
		return provider.Key{}, fmt.Errorf("retiring key %s: %w", k.ID, err)
	}
	k.ExpiresAt = end
	return k, nil
}
