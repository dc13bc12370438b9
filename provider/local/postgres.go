package local

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/keygate/keygate/internal/pgmigrate"
	"github.com/keygate/keygate/provider"
)

// The store on Postgres: how it connects, its schema, and how replicas
// learn of each other's key changes. docs/providers/local.md, "Postgres",
// describes all of it.

// Pool bounds, per process: writers and readers each hold at most this
// many connections, and WatchKeys one more.
const (
	pgWriteConns = 8
	pgReadConns  = 8
	// pgConnectTimeout bounds a connection attempt when the URL sets no
	// connect_timeout, so an unreachable server fails a request instead of
	// holding it.
	pgConnectTimeout = 10 * time.Second
)

// pgComponent is the store's component in internal/pgmigrate's
// keygate_schema table.
const pgComponent = "store"

// pgSyncLock is the advisory lock under which a replica makes the field
// indexes of existing types ("kgstsync").
const pgSyncLock = 0x6b67737473796e63

// pgMigrations is the Postgres schema, one step per entry (internal/pgmigrate,
// component "store"). Only ever append. Step 1 is the SQLite schema as of its
// migration 5, in Postgres types: timestamps stay BIGINT Unix nanoseconds,
// JSON is JSONB, blobs are BYTEA, and text compares byte by byte (COLLATE
// "C", as SQLite's BINARY). The field indexes (pgjson.go) depend on the
// data, so pgSyncListSchema makes them.
var pgMigrations = []string{
	`
CREATE TABLE content_types (
	name        TEXT COLLATE "C" NOT NULL,
	description TEXT COLLATE "C" NOT NULL DEFAULT '',
	fields      JSONB NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(fields) = 'array'),
	created_at  BIGINT NOT NULL,
	CONSTRAINT content_types_pkey PRIMARY KEY (name)
);

CREATE TABLE objects (
	id          TEXT COLLATE "C" PRIMARY KEY,
	type        TEXT COLLATE "C" NOT NULL REFERENCES content_types (name),
	slug        TEXT COLLATE "C" NOT NULL,
	title       TEXT COLLATE "C" NOT NULL,
	status      TEXT COLLATE "C" NOT NULL CHECK (status IN ('draft', 'published')),
	version     BIGINT NOT NULL CHECK (version >= 1),
	fields      JSONB NOT NULL CHECK (jsonb_typeof(fields) = 'object'),
	created_at  BIGINT NOT NULL,
	modified_at BIGINT NOT NULL,
	CONSTRAINT objects_type_slug UNIQUE (type, slug)
);
CREATE INDEX objects_type_modified ON objects (type, modified_at, id);
CREATE INDEX objects_type_status_modified ON objects (type, status, modified_at, id);
CREATE INDEX objects_type_title ON objects (type, title, modified_at, id);
CREATE INDEX objects_type_created_modified ON objects (type, created_at, modified_at, id);

CREATE TABLE keys (
	id           TEXT COLLATE "C" PRIMARY KEY,
	name         TEXT COLLATE "C" NOT NULL,
	secret_hash  BYTEA NOT NULL CHECK (octet_length(secret_hash) = 32),
	masked       TEXT COLLATE "C" NOT NULL,
	scopes       JSONB NOT NULL CHECK (jsonb_typeof(scopes) = 'array'),
	created_at   BIGINT NOT NULL,
	expires_at   BIGINT NOT NULL,
	last_used_at BIGINT,
	revoked_at   BIGINT,
	created_by   TEXT COLLATE "C" NOT NULL DEFAULT '',
	rotated_to   TEXT COLLATE "C" REFERENCES keys (id),
	rotation_id  TEXT COLLATE "C" CHECK (rotation_id IS NULL OR length(rotation_id) BETWEEN 1 AND 64)
);
CREATE UNIQUE INDEX keys_rotation_id ON keys (rotation_id) WHERE rotation_id IS NOT NULL;
-- Not partial, unlike SQLite's: the lineage walks join on these columns,
-- and Postgres uses a partial index only where the query implies its
-- predicate.
CREATE INDEX keys_created_by ON keys (created_by);
CREATE INDEX keys_rotated_to ON keys (rotated_to);

CREATE TABLE oauth_clients (
	id            TEXT COLLATE "C" PRIMARY KEY,
	name          TEXT COLLATE "C" NOT NULL,
	secret_hash   BYTEA CHECK (secret_hash IS NULL OR octet_length(secret_hash) = 32),
	auth_method   TEXT COLLATE "C" NOT NULL CHECK (auth_method IN ('none', 'client_secret_basic', 'client_secret_post')),
	redirect_uris JSONB NOT NULL CHECK (jsonb_typeof(redirect_uris) = 'array'),
	created_at    BIGINT NOT NULL,
	CHECK ((auth_method = 'none') = (secret_hash IS NULL))
);
CREATE INDEX oauth_clients_created ON oauth_clients (created_at);

CREATE TABLE oauth_grants (
	id             TEXT COLLATE "C" PRIMARY KEY,
	client_id      TEXT COLLATE "C" NOT NULL,
	client_name    TEXT COLLATE "C" NOT NULL,
	redirect_host  TEXT COLLATE "C" NOT NULL,
	resource       TEXT COLLATE "C" NOT NULL,
	scopes         JSONB NOT NULL CHECK (jsonb_typeof(scopes) = 'array'),
	approved_by    TEXT COLLATE "C" NOT NULL REFERENCES keys (id),
	created_at     BIGINT NOT NULL,
	expires_at     BIGINT NOT NULL,
	last_used_at   BIGINT,
	revoked_at     BIGINT,
	revoked_reason TEXT COLLATE "C" NOT NULL DEFAULT ''
);
CREATE INDEX oauth_grants_approved_by ON oauth_grants (approved_by);
CREATE INDEX oauth_grants_client ON oauth_grants (client_id);

CREATE TABLE oauth_refresh_tokens (
	hash       BYTEA PRIMARY KEY CHECK (octet_length(hash) = 32),
	grant_id   TEXT COLLATE "C" NOT NULL REFERENCES oauth_grants (id) ON DELETE CASCADE,
	generation INTEGER NOT NULL CHECK (generation >= 1),
	created_at BIGINT NOT NULL,
	used_at    BIGINT,
	UNIQUE (grant_id, generation)
);

CREATE TABLE oauth_signing_keys (
	id          TEXT COLLATE "C" PRIMARY KEY,
	algorithm   TEXT COLLATE "C" NOT NULL,
	private_key BYTEA NOT NULL,
	created_at  BIGINT NOT NULL,
	retired_at  BIGINT,
	drop_at     BIGINT
);

CREATE TABLE store_secrets (
	name  TEXT COLLATE "C" PRIMARY KEY,
	value BYTEA NOT NULL
);
`,
}

// isPostgresURL reports whether target names a Postgres database.
func isPostgresURL(target string) bool {
	return strings.HasPrefix(target, "postgres://") || strings.HasPrefix(target, "postgresql://")
}

// pgTarget is a parsed Postgres URL. It holds the password, so it is never
// printed: shown is what may be.
type pgTarget struct {
	cfg    *pgx.ConnConfig
	shown  string // the URL, its password masked
	secret string // the password, "" when none
}

func (t pgTarget) String() string   { return t.shown }
func (t pgTarget) GoString() string { return t.shown }

// redact removes the password from text.
func (t *pgTarget) redact(text string) string {
	if t.secret == "" {
		return text
	}
	for _, form := range []string{t.secret, url.QueryEscape(t.secret), url.PathEscape(t.secret)} {
		text = strings.ReplaceAll(text, form, "***")
	}
	return text
}

// maskURL returns a Postgres URL with its password shown as ***, in the
// user part or as a password parameter; a URL that cannot be parsed is not
// shown at all.
func maskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(a Postgres URL that cannot be parsed, not shown: it may hold a password)"
	}
	// url escapes "*", so the mask goes in after: a placeholder that
	// needs no escaping stands for it.
	const mask = "MASKEDBYKEYGATE"
	_, has := u.User.Password()
	if has {
		u.User = url.UserPassword(u.User.Username(), mask)
	}
	if u.RawQuery != "" {
		q := u.Query()
		for _, k := range []string{"password", "sslpassword"} {
			if q.Has(k) {
				q.Set(k, mask)
			}
		}
		u.RawQuery = q.Encode()
	}
	return strings.ReplaceAll(u.String(), mask, "***")
}

// pgOpenError is a failure to open the store on Postgres. Its text names
// the database with the password masked; it matches provider.ErrUnavailable
// when the database could not be reached. The driver's error is kept only
// as text, with the password removed, since its configuration holds the
// password.
type pgOpenError struct {
	msg         string
	unavailable bool
}

func (e *pgOpenError) Error() string { return e.msg }

func (e *pgOpenError) Is(target error) bool {
	return e.unavailable && target == provider.ErrUnavailable
}

func (t *pgTarget) openError(doing string, err error) error {
	msg := "opening store " + t.shown + ": " + doing + ": " + t.redact(err.Error())
	lost := lostDatabase(err) || errors.Is(err, provider.ErrUnavailable)
	if lost {
		msg += " (the database is unreachable; keygate retries when it is started again)"
	}
	return &pgOpenError{msg: msg, unavailable: lost}
}

func parsePGTarget(target string) (*pgTarget, error) {
	t := &pgTarget{shown: maskURL(target)}
	u, urlErr := url.Parse(target)
	if urlErr == nil {
		t.secret, _ = u.User.Password()
		if p := u.Query().Get("password"); p != "" {
			t.secret = p
		}
	}
	cfg, err := pgx.ParseConfig(target)
	if err != nil {
		msg := "opening store " + t.shown + ": cannot read the Postgres URL"
		// pgx's text quotes the URL, masking what it recognises as a
		// password; only what follows the quote is kept, and only when the
		// password is known, to be removed from it too.
		if text := err.Error(); urlErr == nil {
			if i := strings.LastIndex(text, "`: "); i >= 0 {
				msg += ": " + t.redact(text[i+3:])
			}
		}
		return nil, &pgOpenError{msg: msg}
	}
	if cfg.Password != "" {
		t.secret = cfg.Password
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = pgConnectTimeout
	}
	t.cfg = cfg
	return t, nil
}

// connConfig is the configuration of one of the store's connections, named
// for pg_stat_activity.
func (t *pgTarget) connConfig(name string, readOnly bool) *pgx.ConnConfig {
	c := t.cfg.Copy()
	if c.RuntimeParams["application_name"] == "" {
		c.RuntimeParams["application_name"] = name
	}
	if readOnly {
		// A bug can never write through the readers.
		c.RuntimeParams["default_transaction_read_only"] = "on"
	}
	return c
}

func openPostgres(ctx context.Context, target string, opts Options) (*Store, error) {
	t, err := parsePGTarget(target)
	if err != nil {
		return nil, err
	}
	s := newStore(&dialect{pg: true, redact: t.redact}, opts)
	s.pg = t
	rw := stdlib.OpenDB(*t.connConfig("keygate store", false))
	ro := stdlib.OpenDB(*t.connConfig("keygate store reader", true))
	for _, p := range []struct {
		db    *sql.DB
		conns int
	}{{rw, pgWriteConns}, {ro, pgReadConns}} {
		p.db.SetMaxOpenConns(p.conns)
		p.db.SetMaxIdleConns(p.conns)
		// A connection is replaced from time to time, so a pool follows
		// a failover or a changed DNS name.
		p.db.SetConnMaxLifetime(30 * time.Minute)
		p.db.SetConnMaxIdleTime(5 * time.Minute)
	}
	s.setPools(rw, ro)
	empty, err := pgmigrate.Apply(ctx, rw, pgComponent, pgMigrations)
	if err != nil {
		_ = s.Close() // the migration error says what failed
		return nil, t.openError("migrating the schema", err)
	}
	if err := pgSyncListSchema(ctx, s); err != nil {
		_ = s.Close() // the indexing error says what failed
		return nil, t.openError("indexing content types", err)
	}
	// Only the replica whose migration found no schema seeds the store and
	// mints the first admin key.
	s.created = empty
	return s, nil
}

// pgSyncListSchema is syncListSchema for Postgres: the cursor key, and the
// field indexes of existing types that lack one. It runs at every Open,
// under an advisory lock so that replicas starting together take turns,
// at READ COMMITTED so that the one that waited sees what the other made.
func pgSyncListSchema(ctx context.Context, s *Store) error {
	return inTx(ctx, s.d, s.rwDB, nil, func(tx querier) error {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, int64(pgSyncLock)); err != nil {
			return fmt.Errorf("waiting for other replicas: %w", err)
		}
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return fmt.Errorf("making the list cursor key: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO store_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`,
			cursorSecretName, secret); err != nil {
			return fmt.Errorf("storing the list cursor key: %w", err)
		}
		// A field has its index and its statistics, of the same name.
		have := map[string]int{}
		rows, err := tx.QueryContext(ctx, `
			SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'objects'
			UNION ALL SELECT stxname FROM pg_statistic_ext WHERE stxnamespace = current_schema()::regnamespace`)
		if err != nil {
			return fmt.Errorf("reading indexes: %w", err)
		}
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				rows.Close()
				return fmt.Errorf("reading indexes: %w", err)
			}
			have[name]++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("reading indexes: %w", err)
		}
		types, err := declaredFields(ctx, tx)
		if err != nil {
			return err
		}
		missing := map[string][]string{}
		for name, fields := range types {
			for _, f := range fields {
				if have[pgFieldIndexName(name, f)] < 2 {
					missing[name] = append(missing[name], f)
				}
			}
		}
		for name, fields := range missing {
			if err := pgCreateFieldIndexes(ctx, tx, name, fields); err != nil {
				return err
			}
		}
		return nil
	})
}

// String names the store, with a Postgres password masked.
func (s *Store) String() string {
	if s.pg != nil {
		return "local store on " + s.pg.shown
	}
	return "local store (SQLite)"
}

// How WatchKeys waits: between connection attempts (doubling, jittered),
// and for a notification before it checks that its connection still
// works.
const (
	watchFirstBackoff = 100 * time.Millisecond
	watchMaxBackoff   = 2 * time.Second
	watchPing         = 30 * time.Second
)

// watcherName is the application_name of WatchKeys's connection.
const watcherName = "keygate store watcher"

// WatchKeys tells fn which keys and grants other replicas (and this one)
// changed: every transaction that revokes, rotates, retires or discards a
// key, or revokes a grant, announces the ids it changed (key ids, and grant
// ids, which start with "gr_") when it commits, and fn receives them.
// fn(nil) means anything may have changed: drop every cached verification.
// fn is called with nil when WatchKeys starts listening, when it loses its
// connection, and on every failed attempt to get it back (at most
// watchMaxBackoff apart), because announcements made while it is not
// listening are lost. A cache may therefore trust an entry only while no
// fn(nil) has come since it was made.
//
// On Postgres it listens on a connection of its own and blocks until ctx
// ends; run it in a goroutine. On SQLite it returns at once: there is one
// process, whose own writes already reach its caches.
func (s *Store) WatchKeys(ctx context.Context, fn func(ids []string)) {
	if s.pg == nil {
		return
	}
	wait := watchFirstBackoff
	for ctx.Err() == nil {
		conn, err := s.listen(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			fn(nil)
			timer := time.NewTimer(wait/2 + mrand.N(wait/2+1))
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
			wait = min(2*wait, watchMaxBackoff)
			continue
		}
		wait = watchFirstBackoff
		fn(nil) // listening now; what changed before is unknown
		receive(ctx, conn, fn)
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = conn.Close(closeCtx) // the connection failed or ctx ended; its close error adds nothing
		cancel()
		if ctx.Err() != nil {
			return
		}
		fn(nil) // not listening until the next connection
	}
}

func (s *Store) listen(ctx context.Context) (*pgx.Conn, error) {
	cfg := s.pg.connConfig(watcherName, true)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		_ = conn.Close(context.Background()) // the LISTEN error says what failed
		return nil, err
	}
	return conn, nil
}

// receive hands each notification to fn until the connection fails or ctx
// ends. A connection that has been quiet for watchPing is pinged, so one
// that died silently is noticed.
func receive(ctx context.Context, conn *pgx.Conn, fn func(ids []string)) {
	for {
		wctx, cancel := context.WithTimeout(ctx, watchPing)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			fn([]string{n.Payload})
			continue
		case ctx.Err() != nil || conn.IsClosed() || !errors.Is(err, context.DeadlineExceeded):
			return
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = conn.Ping(pctx)
		cancel()
		if err != nil {
			return
		}
	}
}
