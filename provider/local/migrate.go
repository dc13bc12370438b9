package local

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations holds the SQLite schema, one step per entry: applying migrations[i]
// takes a store from PRAGMA user_version i to i+1. Only ever append; a step
// that has shipped must not change.
var migrations = []string{
	// 1: content types, objects and keys.
	`
CREATE TABLE content_types (
	name        TEXT PRIMARY KEY,
	description TEXT NOT NULL DEFAULT '',
	fields      TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(fields) AND json_type(fields) = 'array'),
	created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE objects (
	id          TEXT PRIMARY KEY,
	type        TEXT NOT NULL REFERENCES content_types (name),
	slug        TEXT NOT NULL,
	title       TEXT NOT NULL,
	status      TEXT NOT NULL CHECK (status IN ('draft', 'published')),
	version     INTEGER NOT NULL CHECK (version >= 1),
	fields      TEXT NOT NULL CHECK (json_valid(fields) AND json_type(fields) = 'object'),
	created_at  INTEGER NOT NULL,
	modified_at INTEGER NOT NULL,
	UNIQUE (type, slug)
) STRICT;

-- The default listing (newest first, optionally by status) reads these in
-- order; id is included so the tie-breaker needs no sort either.
CREATE INDEX objects_type_modified ON objects (type, modified_at, id);
CREATE INDEX objects_type_status_modified ON objects (type, status, modified_at, id);
CREATE INDEX objects_type_created ON objects (type, created_at, id);

CREATE TABLE keys (
	id           TEXT PRIMARY KEY,
	name         TEXT NOT NULL,
	secret_hash  BLOB NOT NULL CHECK (length(secret_hash) = 32),
	masked       TEXT NOT NULL,
	scopes       TEXT NOT NULL CHECK (json_valid(scopes) AND json_type(scopes) = 'array'),
	created_at   INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL,
	last_used_at INTEGER,
	revoked_at   INTEGER,
	created_by   TEXT NOT NULL DEFAULT '',
	rotated_to   TEXT REFERENCES keys (id)
) STRICT;
`,
	// 2: rotation tags. A key made by a journaled rotation carries the
	// rotation's id, so a key whose secret was lost in a crash can be found
	// and revoked. The unique index allows one key per rotation: a retried
	// create can never mint a second one.
	`
ALTER TABLE keys ADD COLUMN rotation_id TEXT CHECK (rotation_id IS NULL OR length(rotation_id) BETWEEN 1 AND 64);
CREATE UNIQUE INDEX keys_rotation_id ON keys (rotation_id) WHERE rotation_id IS NOT NULL;
`,
	// 3: lineage. Revoking a key revokes the keys it created and its
	// rotation chain, and the policy asks who created a key: both walk
	// created_by and rotated_to.
	`
CREATE INDEX keys_created_by ON keys (created_by) WHERE created_by != '';
CREATE INDEX keys_rotated_to ON keys (rotated_to) WHERE rotated_to IS NOT NULL;
`,
	// 4: OAuth. Clients registered dynamically (RFC 7591), the grants a
	// person approved with a key (each one a credential, ended with the key
	// that approved it), their refresh tokens (SHA-256 only; a used one is
	// kept to detect its reuse) and the keys that sign access tokens.
	// docs/oauth.md describes each table.
	`
CREATE TABLE oauth_clients (
	id            TEXT PRIMARY KEY,
	name          TEXT NOT NULL,
	secret_hash   BLOB CHECK (secret_hash IS NULL OR length(secret_hash) = 32),
	auth_method   TEXT NOT NULL CHECK (auth_method IN ('none', 'client_secret_basic', 'client_secret_post')),
	redirect_uris TEXT NOT NULL CHECK (json_valid(redirect_uris) AND json_type(redirect_uris) = 'array'),
	created_at    INTEGER NOT NULL,
	CHECK ((auth_method = 'none') = (secret_hash IS NULL))
) STRICT;
CREATE INDEX oauth_clients_created ON oauth_clients (created_at);

CREATE TABLE oauth_grants (
	id             TEXT PRIMARY KEY,
	client_id      TEXT NOT NULL,
	client_name    TEXT NOT NULL,
	redirect_host  TEXT NOT NULL,
	resource       TEXT NOT NULL,
	scopes         TEXT NOT NULL CHECK (json_valid(scopes) AND json_type(scopes) = 'array'),
	approved_by    TEXT NOT NULL REFERENCES keys (id),
	created_at     INTEGER NOT NULL,
	expires_at     INTEGER NOT NULL,
	last_used_at   INTEGER,
	revoked_at     INTEGER,
	revoked_reason TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX oauth_grants_approved_by ON oauth_grants (approved_by);
CREATE INDEX oauth_grants_client ON oauth_grants (client_id);

CREATE TABLE oauth_refresh_tokens (
	hash       BLOB PRIMARY KEY CHECK (length(hash) = 32),
	grant_id   TEXT NOT NULL REFERENCES oauth_grants (id) ON DELETE CASCADE,
	generation INTEGER NOT NULL CHECK (generation >= 1),
	created_at INTEGER NOT NULL,
	used_at    INTEGER,
	UNIQUE (grant_id, generation)
) STRICT;

CREATE TABLE oauth_signing_keys (
	id          TEXT PRIMARY KEY,
	algorithm   TEXT NOT NULL,
	private_key BLOB NOT NULL,
	created_at  INTEGER NOT NULL,
	retired_at  INTEGER,
	drop_at     INTEGER
) STRICT;
`,
	// 5: keyset listing (provider/local/list.go). A listing's ties are
	// broken by modified_at, then id, so each sort reads an index in
	// (type, key, modified_at, id) order: title gets one, created_at's is
	// replaced. store_secrets holds the key that signs list cursors. The key
	// itself and the field indexes of each content type depend on the data,
	// so syncListSchema makes them.
	`
CREATE INDEX objects_type_title ON objects (type, title, modified_at, id);
DROP INDEX objects_type_created;
CREATE INDEX objects_type_created_modified ON objects (type, created_at, modified_at, id);
CREATE TABLE store_secrets (
	name  TEXT PRIMARY KEY,
	value BLOB NOT NULL
) STRICT;
`,
}

// migrate brings the schema up to date in one transaction and reports
// whether the store had no schema before (a new store). It refuses a store
// written by a newer keygate rather than guess at a schema it does not know.
func migrate(ctx context.Context, db *sql.DB) (empty bool, err error) {
	err = inTx(ctx, sqliteDialect, db, nil, func(tx querier) error {
		var version int
		if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
			return fmt.Errorf("reading schema version: %w", err)
		}
		if version > len(migrations) {
			return fmt.Errorf("the store has schema version %d but this keygate knows only up to %d; upgrade keygate, or point --store at another file", version, len(migrations))
		}
		empty = version == 0
		for i := version; i < len(migrations); i++ {
			if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
				return fmt.Errorf("applying schema migration %d: %w", i+1, err)
			}
		}
		if version == len(migrations) {
			return nil
		}
		if err := syncListSchema(ctx, tx); err != nil {
			return fmt.Errorf("after schema migration %d: %w", len(migrations), err)
		}
		// PRAGMA takes no bound parameters; the value is our own integer.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
			return fmt.Errorf("recording schema version: %w", err)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("opening store: %w", err)
	}
	return empty, nil
}
