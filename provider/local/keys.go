package local

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

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

// CreateKey mints a key. Whether the caller may have it is the policy's
// decision (package policy), made before this is called; the store checks
// only that the request is well formed.
func (s *Store) CreateKey(ctx context.Context, nk provider.NewKey) (provider.IssuedKey, error) {
	now, nowN := s.nowNanos()
	name := strings.TrimSpace(nk.Name)
	if name == "" || utf8.RuneCountInString(name) > maxKeyNameLen {
		return provider.IssuedKey{}, &provider.FieldError{Field: "name", Problem: fmt.Sprintf("must be 1 to %d characters", maxKeyNameLen), Fix: `say what the key is for, e.g. "ci-publisher"`}
	}
	if err := s.d.checkStorable("name", name); err != nil {
		return provider.IssuedKey{}, err
	}
	scopes, err := auth.ParseScopes(nk.Scopes.Strings())
	if err != nil {
		return provider.IssuedKey{}, &provider.FieldError{Field: "scopes", Problem: err.Error(), Fix: "use scopes such as content:read or content:write:posts"}
	}
	if !nk.ExpiresAt.After(now) {
		return provider.IssuedKey{}, &provider.FieldError{Field: "expires_in_days", Problem: "the key would already be expired", Fix: "choose an expiry in the future"}
	}
	tok, parsed, err := auth.NewToken()
	if err != nil {
		return provider.IssuedKey{}, fmt.Errorf("minting key: %w", err)
	}
	k := provider.Key{ID: parsed.PublicID, Name: name, Masked: auth.Mask(tok), Scopes: scopes.Strings(),
		CreatedAt: now, ExpiresAt: fromNanos(toNanos(nk.ExpiresAt)), CreatedBy: nk.CreatedBy}
	err = s.inWriteTx(ctx, func(tx querier) error {
		if err := checkCreator(ctx, tx, nk, now); err != nil {
			return err
		}
		return insertKey(ctx, tx, k, parsed, nowN, "")
	})
	if err != nil {
		return provider.IssuedKey{}, err
	}
	return provider.IssuedKey{Key: k, Secret: auth.NewSecret(tok)}, nil
}

// checkCreator re-checks, inside the write transaction, what makes a key's
// creator able to create it at all: the creator still works and has not
// been rotated (a revocation running at the same time must not miss the new
// key), and no key above the new one would have more than
// nk.MaxDescendants live keys below it (admin keys excepted). The policy
// decided the rest before; this is what must hold at the instant of the
// insert.
func checkCreator(ctx context.Context, tx querier, nk provider.NewKey, now time.Time) error {
	if nk.CreatedBy == "" {
		return nil
	}
	creator, err := getKey(ctx, tx, nk.CreatedBy)
	if err != nil {
		return fmt.Errorf("reading the creating key: %w", err)
	}
	switch {
	case isRevoked(creator, now) || isExpired(creator, now):
		return &provider.FieldError{Field: "credential", Problem: fmt.Sprintf("key %s, which asked for the new key, no longer works", creator.ID),
			Fix: "use a key that works"}
	case creator.RotatedTo != "":
		return &provider.FieldError{Field: "credential", Problem: fmt.Sprintf("key %s, which asked for the new key, was rotated into key %s", creator.ID, creator.RotatedTo),
			Fix: "use the new key"}
	case nk.MaxDescendants <= 0:
		return nil
	}
	nowN := toNanos(now)
	for id := creator.ID; id != ""; {
		k, err := getKey(ctx, tx, id)
		if err != nil {
			return fmt.Errorf("reading the keys above the new one: %w", err)
		}
		if slices.Contains(k.Scopes, string(auth.Admin)) {
			break // an admin's tree is the operator's business
		}
		n, err := liveDescendants(ctx, tx, k.ID, nowN)
		if err != nil {
			return err
		}
		if n >= nk.MaxDescendants {
			return &provider.FieldError{Field: "credential", Problem: fmt.Sprintf("key %s already has %d live keys below it, the most a key may have", k.ID, n),
				Fix: "revoke keys that are no longer needed (credentials_list shows them)"}
		}
		id = k.CreatedBy
	}
	return nil
}

// insertKey stores k with the SHA-256 of its secret: never the token itself.
// A non-empty rotationID tags the key with the rotation that made it.
func insertKey(ctx context.Context, tx querier, k provider.Key, parsed auth.ParsedToken, now int64, rotationID string) error {
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
	if tag.Valid && tx.d.violates(err, rotationIDTaken) {
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

// lineageCTE names, as "lineage", every key that falls with key ?1: the key,
// the keys of its rotation chain (the successors it was rotated into and the
// predecessors still in their grace period: one credential, several
// secrets), and every key any of them created, with their own chains and
// children, transitively.
const lineageCTE = `
	WITH RECURSIVE lineage(id) AS (
		SELECT ?1
		UNION SELECT k.rotated_to FROM keys k JOIN lineage l ON k.id = l.id WHERE k.rotated_to IS NOT NULL
		UNION SELECT k.id FROM keys k JOIN lineage l ON k.rotated_to = l.id
		UNION SELECT k.id FROM keys k JOIN lineage l ON k.created_by = l.id
	)`

// pgLineageCTE is lineageCTE for Postgres, which allows a recursive query
// to name itself only once: the three steps are one lateral subquery.
const pgLineageCTE = `
	WITH RECURSIVE lineage(id) AS (
		SELECT CAST(?1 AS text) COLLATE "C"
		UNION SELECT n.id FROM lineage l CROSS JOIN LATERAL (
			SELECT k.rotated_to FROM keys k WHERE k.id = l.id AND k.rotated_to IS NOT NULL
			UNION ALL SELECT k.id FROM keys k WHERE k.rotated_to = l.id
			UNION ALL SELECT k.id FROM keys k WHERE k.created_by = l.id
		) AS n(id)
	)`

func (d *dialect) lineageCTE() string {
	if d.pg {
		return pgLineageCTE
	}
	return lineageCTE
}

// RevokeKey revokes key id at once, with its whole lineage: its rotation
// chain and every key any of those created, transitively, so no one keeps a
// key alive past a revocation by rotating it or by minting from it
// (docs/SECURITY.md, Revocation cascades). A key still in a rotation
// grace period is ended too. It runs the cascade even when id was revoked
// before, and reports already=true when id itself was; revoked lists every
// key this call ended, id first when it was one of them. Whether the caller
// may do this is the policy's decision, made before.
func (s *Store) RevokeKey(ctx context.Context, id string) (k provider.Key, revoked []string, already bool, err error) {
	now, nowN := s.nowNanos()
	err = s.inWriteTx(ctx, func(tx querier) error {
		revoked = nil
		var err error
		if k, err = getKey(ctx, tx, id); err != nil {
			return err
		}
		already = isRevoked(k, now)
		rows, err := tx.QueryContext(ctx, tx.d.lineageCTE()+`
			UPDATE keys SET revoked_at = ?2
			WHERE id IN (SELECT id FROM lineage) AND (revoked_at IS NULL OR revoked_at > ?2)
			RETURNING id`, id, nowN)
		if err != nil {
			return fmt.Errorf("revoking key %s and its lineage: %w", id, err)
		}
		defer rows.Close()
		for rows.Next() {
			var rid string
			if err := rows.Scan(&rid); err != nil {
				return fmt.Errorf("revoking key %s and its lineage: %w", id, err)
			}
			revoked = append(revoked, rid)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("revoking key %s and its lineage: %w", id, err)
		}
		if err := tx.d.notify(ctx, tx, revoked...); err != nil {
			return err
		}
		slices.SortFunc(revoked, func(a, b string) int {
			switch {
			case a == id:
				return -1
			case b == id:
				return 1
			}
			return strings.Compare(a, b)
		})
		if !already {
			k.RevokedAt = now
		}
		return nil
	})
	if err != nil {
		return provider.Key{}, nil, false, err
	}
	return k, revoked, already, nil
}

// LiveLineage lists the keys that revoking key id would end now: id itself
// when it still works, then the rest of its lineage that does (see
// RevokeKey), each once.
func (s *Store) LiveLineage(ctx context.Context, id string) ([]string, error) {
	_, nowN := s.nowNanos()
	rows, err := s.ro.QueryContext(ctx, s.d.lineageCTE()+`
		SELECT id FROM keys WHERE id IN (SELECT id FROM lineage) AND (revoked_at IS NULL OR revoked_at > ?2) AND expires_at > ?2
		ORDER BY id = ?1 DESC, id`, id, nowN)
	if err != nil {
		return nil, fmt.Errorf("reading the lineage of key %s: %w", id, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var lid string
		if err := rows.Scan(&lid); err != nil {
			return nil, fmt.Errorf("reading the lineage of key %s: %w", id, err)
		}
		out = append(out, lid)
	}
	return out, rows.Err()
}

// DiscardSuccessor undoes a rotation that made key id and was rolled back:
// id is revoked on its own (its predecessor, which still works, is not),
// the predecessor no longer points to it, and the keys the rotation had
// moved to id return to the predecessor. Revoking id with RevokeKey instead
// would take the predecessor and its children down with it. A key that no
// rotation made is simply revoked alone.
func (s *Store) DiscardSuccessor(ctx context.Context, id string) error {
	_, nowN := s.nowNanos()
	return s.inWriteTx(ctx, func(tx querier) error {
		if _, err := getKey(ctx, tx, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE keys SET revoked_at = ?1 WHERE id = ?2 AND (revoked_at IS NULL OR revoked_at > ?1)`, nowN, id); err != nil {
			return fmt.Errorf("revoking key %s: %w", id, err)
		}
		if err := tx.d.notify(ctx, tx, id); err != nil {
			return err
		}
		var prev string
		switch err := tx.QueryRowContext(ctx, `SELECT id FROM keys WHERE rotated_to = ?`, id).Scan(&prev); {
		case errors.Is(err, sql.ErrNoRows):
			return nil
		case err != nil:
			return fmt.Errorf("finding the key %s replaced: %w", id, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE keys SET rotated_to = NULL WHERE id = ?`, prev); err != nil {
			return fmt.Errorf("unlinking key %s from its discarded successor: %w", prev, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE keys SET created_by = ? WHERE created_by = ?`, prev, id); err != nil {
			return fmt.Errorf("returning the keys %s made to key %s: %w", id, prev, err)
		}
		return tx.d.notify(ctx, tx, prev)
	})
}

// Lineage returns key id with the keys that created it (created_by, nearest
// first) and the keys it was rotated into (rotated_to, nearest first), for
// the policy's ownership rule.
func (s *Store) Lineage(ctx context.Context, id string) (provider.Lineage, error) {
	var l provider.Lineage
	err := s.inReadTx(ctx, func(tx querier) error {
		var err error
		if l.Key, err = getKey(ctx, tx, id); err != nil {
			return err
		}
		if l.Ancestors, err = walk(ctx, tx, id, "created_by", "created_by != ''"); err != nil {
			return fmt.Errorf("reading the keys that created key %s: %w", id, err)
		}
		if l.Successors, err = walk(ctx, tx, id, "rotated_to", "rotated_to IS NOT NULL"); err != nil {
			return fmt.Errorf("reading the successors of key %s: %w", id, err)
		}
		return nil
	})
	return l, err
}

// maxLineage bounds a walk up created_by or along rotated_to: far beyond
// any real chain, it stops a corrupt store from looping.
const maxLineage = 1000

// walk follows column (created_by or rotated_to) from key id and returns the
// ids it reaches, nearest first, without id itself.
func walk(ctx context.Context, tx querier, id, column, present string) ([]string, error) {
	// column and present are constants of this file, never input.
	rows, err := tx.QueryContext(ctx, `
		WITH RECURSIVE chain(id, depth) AS (
			SELECT `+column+`, 1 FROM keys WHERE id = ?1 AND `+present+`
			UNION SELECT k.`+column+`, c.depth + 1 FROM keys k JOIN chain c ON k.id = c.id
			WHERE k.`+present+` AND c.depth < ?2
		)
		SELECT id FROM chain ORDER BY depth`, id, maxLineage)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var next string
		if err := rows.Scan(&next); err != nil {
			return nil, err
		}
		if next == id || slices.Contains(out, next) {
			break
		}
		out = append(out, next)
	}
	return out, rows.Err()
}

// LiveDescendants counts the live keys below key id: the keys it created,
// the keys those created, and so on.
func (s *Store) LiveDescendants(ctx context.Context, id string) (int, error) {
	_, nowN := s.nowNanos()
	return liveDescendants(ctx, s.ro, id, nowN)
}

func liveDescendants(ctx context.Context, q querier, id string, nowN int64) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, `
		WITH RECURSIVE below(id, depth) AS (
			SELECT id, 1 FROM keys WHERE created_by = ?1
			UNION SELECT k.id, b.depth + 1 FROM keys k JOIN below b ON k.created_by = b.id WHERE b.depth < ?3
		)
		SELECT count(*) FROM keys WHERE id IN (SELECT id FROM below) AND (revoked_at IS NULL OR revoked_at > ?2) AND expires_at > ?2`,
		id, nowN, maxLineage).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting the keys below key %s: %w", id, err)
	}
	return n, nil
}

// Successor returns the key that key id was rotated into, whether or not it
// still works, or "" when it was never rotated (or its rotation was rolled
// back). A key with a successor is superseded for good: it is an earlier
// version of a credential, and only the current version may make or change
// keys.
func (s *Store) Successor(ctx context.Context, id string) (string, error) {
	k, err := getKey(ctx, s.ro, id)
	if err != nil {
		return "", err
	}
	return k.RotatedTo, nil
}

// RotateKey issues the successor of key id for a journaled rotation
// (package rotation): same name, same scopes and the same expires_at.
// Rotation replaces the secret, not the lifetime, so it can never be used to
// extend a key. The old key points to its successor (rotated_to) and stays
// as it was, for RetireKey once the new secret is in place. The new key is
// tagged with rotationID, so KeysByRotation finds it even if the caller dies
// before it stores the secret.
//
// It refuses a second key for the same rotationID, and an old key that
// already has a live successor, so two rotations of one key cannot both
// succeed (the compare-and-swap of docs/SECURITY.md, Rotation failure table). A successor that
// was revoked, as a rolled-back rotation leaves it, does not count. Whether
// the caller may rotate the key is the policy's decision, made before.
func (s *Store) RotateKey(ctx context.Context, id, rotationID string) (provider.IssuedKey, error) {
	if !rotationIDPattern().MatchString(rotationID) {
		return provider.IssuedKey{}, &provider.FieldError{Field: "rotation_id", Problem: "must be 1 to 64 letters, digits, _ or -",
			Fix: "pass the id of the rotation's journal"}
	}
	now, nowN := s.nowNanos()
	tok, parsed, err := auth.NewToken()
	if err != nil {
		return provider.IssuedKey{}, fmt.Errorf("minting key: %w", err)
	}
	var issued provider.IssuedKey
	err = s.inWriteTx(ctx, func(tx querier) error {
		old, err := getKey(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := checkRotatable(old, now); err != nil {
			return err
		}
		if err := checkNotRotated(old); err != nil {
			return err
		}
		// The successor is the same credential with a new secret: it keeps
		// the old key's parent, and the keys the old key created become
		// its children, so retiring the old key revokes none of them.
		next := provider.Key{ID: parsed.PublicID, Name: old.Name, Masked: auth.Mask(tok), Scopes: old.Scopes,
			CreatedAt: now, ExpiresAt: old.ExpiresAt, CreatedBy: old.CreatedBy}
		if err := insertKey(ctx, tx, next, parsed, nowN, rotationID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE keys SET rotated_to = ? WHERE id = ?`, next.ID, id); err != nil {
			return fmt.Errorf("linking key %s to its successor: %w", id, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE keys SET created_by = ? WHERE created_by = ? AND id != ?`, next.ID, id, next.ID); err != nil {
			return fmt.Errorf("moving the keys %s created to its successor: %w", id, err)
		}
		issued = provider.IssuedKey{Key: next, Secret: auth.NewSecret(tok)}
		return tx.d.notify(ctx, tx, id)
	})
	if err != nil {
		return provider.IssuedKey{}, err
	}
	return issued, nil
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

// checkNotRotated refuses to rotate a key that was rotated before: only the
// current version of a credential rotates, and rotated_to, which links the
// versions for revocation, is never overwritten. A rolled-back rotation
// clears the link (DiscardSuccessor), so it does not block the next one.
func checkNotRotated(old provider.Key) error {
	if old.RotatedTo == "" {
		return nil
	}
	return &provider.FieldError{Field: "credential", Problem: fmt.Sprintf("key %s has already been rotated to key %s", old.ID, old.RotatedTo),
		Fix: fmt.Sprintf("rotate key %s, the current version, instead", old.RotatedTo)}
}

// retirePredecessors applies a retirement to every earlier version of key
// id (the keys whose rotated_to chain leads to it).
func retirePredecessors(ctx context.Context, tx querier, id string, grace time.Duration, now time.Time) error {
	nowN := toNanos(now)
	const before = `
		WITH RECURSIVE earlier(id, depth) AS (
			SELECT id, 1 FROM keys WHERE rotated_to = ?1
			UNION SELECT k.id, e.depth + 1 FROM keys k JOIN earlier e ON k.rotated_to = e.id WHERE e.depth < ?3
		)`
	update := `
			UPDATE keys SET revoked_at = ?2 WHERE id IN (SELECT id FROM earlier) AND (revoked_at IS NULL OR revoked_at > ?2)
			RETURNING id`
	end := nowN
	if grace > 0 {
		update = `
			UPDATE keys SET expires_at = ?2 WHERE id IN (SELECT id FROM earlier) AND expires_at > ?2
			RETURNING id`
		end = toNanos(now.Add(grace))
	}
	rows, err := tx.QueryContext(ctx, before+update, id, end, maxLineage)
	if err != nil {
		return fmt.Errorf("retiring the earlier versions of key %s: %w", id, err)
	}
	defer rows.Close()
	var changed []string
	for rows.Next() {
		var pid string
		if err := rows.Scan(&pid); err != nil {
			return fmt.Errorf("retiring the earlier versions of key %s: %w", id, err)
		}
		changed = append(changed, pid)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("retiring the earlier versions of key %s: %w", id, err)
	}
	return tx.d.notify(ctx, tx, changed...)
}

// RetireKey ends key id: at once when grace is zero (or negative), else at
// the earlier of its expiry and now+grace. A revoked key stays as it is.
func (s *Store) RetireKey(ctx context.Context, id string, grace time.Duration) (provider.Key, error) {
	now, _ := s.nowNanos()
	var k provider.Key
	err := s.inWriteTx(ctx, func(tx querier) error {
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

func retire(ctx context.Context, tx querier, k provider.Key, grace time.Duration, now time.Time) (provider.Key, error) {
	// The earlier versions of k, still in their own grace periods, end no
	// later than k: an old secret must never outlive a newer one.
	if err := retirePredecessors(ctx, tx, k.ID, grace, now); err != nil {
		return provider.Key{}, err
	}
	if isRevoked(k, now) {
		return k, nil
	}
	if grace <= 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE keys SET revoked_at = ? WHERE id = ?`, toNanos(now), k.ID); err != nil {
			return provider.Key{}, fmt.Errorf("retiring key %s: %w", k.ID, err)
		}
		k.RevokedAt = fromNanos(toNanos(now))
		return k, tx.d.notify(ctx, tx, k.ID)
	}
	end := fromNanos(toNanos(now.Add(grace)))
	if !end.Before(k.ExpiresAt) {
		return k, nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE keys SET expires_at = ? WHERE id = ?`, toNanos(end), k.ID); err != nil {
		return provider.Key{}, fmt.Errorf("retiring key %s: %w", k.ID, err)
	}
	k.ExpiresAt = end
	return k, tx.d.notify(ctx, tx, k.ID)
}
