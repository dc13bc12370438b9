//go:build unix

package rotation_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/delivery"
	"github.com/keygate/keygate/internal/pgtest"
	"github.com/keygate/keygate/internal/testtier"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/local"
	"github.com/keygate/keygate/rotation"
	"github.com/keygate/keygate/rotation/pgjournal"
	"github.com/keygate/keygate/rotation/rotationtest"
)

// raceEnabled is set by race_test.go, so the crash helper is built the way
// the test binary was and reuses its cached packages.
var raceEnabled bool

const tokenVar = "KEYGATE_TOKEN"

// envTemplate has everything the env-file rewrite must keep byte for byte:
// a comment, export, double and single quotes, an inline comment, a blank
// line and CRLF endings.
const envTemplate = "# keygate settings\r\nexport KEYGATE_STORE=\"/var/lib/keygate/keygate.db\"  # store\r\n\r\n" +
	"KEYGATE_TOKEN='%s'\r\nOTHER=keep # trailing comment\r\n"

var defaultScopes = []string{"content:read", "credentials:write"}

// fixture is one keygate installation: a backend with one key, and an env
// file holding it.
type fixture struct {
	t            *testing.T
	kind         string // "local" or "platform"
	dir          string
	envFile      string
	stateDir     string
	storePath    string
	platformPath string
	popts        rotationtest.Options
	clock        *clock

	old      auth.Secret
	oldID    string
	envBytes []byte // the env file as written

	mu    sync.Mutex
	store *local.Store // open store, for local fixtures

	// journals is where the engine keeps journals: nil for files in
	// stateDir, else Postgres (usePostgres) on db, named by dsn.
	journals rotation.Journals
	pg       *pgjournal.Journals
	db       *sql.DB
	dsn      string
}

// clock is frozen at t, moved only by Add, unless real is set: then it runs
// with the wall clock (plus what Add added), as it must when a subprocess
// writes timestamps from the real clock.
type clock struct {
	mu   sync.Mutex
	t    time.Time
	real bool
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.real {
		return time.Now().Add(c.t.Sub(time.Time{}))
	}
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newFixture(t *testing.T, kind string, popts rotationtest.Options, scopes ...string) *fixture {
	t.Helper()
	return newFixtureClock(t, kind, popts, &clock{t: time.Now()}, scopes...)
}

func newFixtureClock(t *testing.T, kind string, popts rotationtest.Options, c *clock, scopes ...string) *fixture {
	t.Helper()
	if len(scopes) == 0 {
		scopes = defaultScopes
	}
	dir := t.TempDir()
	f := &fixture{t: t, kind: kind, dir: dir, envFile: filepath.Join(dir, "conf", ".env"), stateDir: filepath.Join(dir, "state", "rotation"),
		storePath: filepath.Join(dir, "state", "keygate.db"), platformPath: filepath.Join(dir, "platform.json"), popts: popts,
		clock: c}
	if err := os.MkdirAll(filepath.Dir(f.envFile), 0o700); err != nil {
		t.Fatal(err)
	}
	switch kind {
	case "local":
		s := f.openStore()
		sc, err := auth.ParseScopes(scopes)
		if err != nil {
			t.Fatal(err)
		}
		issued, err := s.CreateKey(t.Context(), provider.NewKey{Name: "keygate", Scopes: sc, ExpiresAt: f.clock.Now().Add(90 * 24 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		f.old, f.oldID = issued.Secret, issued.Key.ID
	case "platform":
		p := rotationtest.Open(f.platformPath, f.platformOptions())
		secret, k, err := p.Mint(scopes...)
		if err != nil {
			t.Fatal(err)
		}
		f.old, f.oldID = secret, k.ID
	default:
		t.Fatalf("unknown fixture kind %q", kind)
	}
	f.envBytes = fmt.Appendf(nil, envTemplate, f.old.Reveal())
	if err := os.WriteFile(f.envFile, f.envBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) platformOptions() rotationtest.Options {
	o := f.popts
	o.Now = f.clock.Now
	return o
}

// openStore opens the local store once; closeStore lets a subprocess have
// it to itself, as after a restart.
func (f *fixture) openStore() *local.Store {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.store == nil {
		s, err := local.Open(context.Background(), f.storePath, local.Options{Now: f.clock.Now})
		if err != nil {
			f.t.Fatal(err)
		}
		f.store = s
		f.t.Cleanup(func() { f.closeStore() })
	}
	return f.store
}

func (f *fixture) closeStore() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.store != nil {
		f.store.Close()
		f.store = nil
	}
}

func (f *fixture) backend() rotation.Backend {
	if f.kind == "local" {
		return f.openStore().RotationBackend()
	}
	return rotationtest.Open(f.platformPath, f.platformOptions()).Backend()
}

func (f *fixture) engine() *rotation.Engine {
	return &rotation.Engine{Name: f.kind, Dir: f.stateDir, EnvFile: f.envFile, Legacy: tokenVar, Backend: f.backend(),
		Places: delivery.Places{EnvFile: f.envFile, KeysDir: filepath.Join(f.dir, "keys")}, Now: f.clock.Now, Journals: f.journals}
}

// journalKinds are the two places an engine keeps its journals and locks,
// for the tests that must hold for both.
var journalKinds = []string{"files", "postgres"}

// kindsFor returns the journal kinds a case of a table runs with: files
// always; Postgres for the cases picked, and every case in the slow tier.
func kindsFor(pick bool) []string {
	if pick || testtier.Slow {
		return journalKinds
	}
	return journalKinds[:1]
}

// useJournals switches f to kind's journals. Postgres locks are waited for
// patiently: a killed helper's lock is freed only once the server sees its
// connection close.
func (f *fixture) useJournals(kind string) { f.useJournalsWait(kind, 30*time.Second) }

// useJournalsWait is useJournals with a lock wait for Postgres.
func (f *fixture) useJournalsWait(kind string, wait time.Duration) {
	f.t.Helper()
	switch kind {
	case "files":
	case "postgres":
		f.usePostgres(pgjournal.Options{LockWait: wait})
	default:
		f.t.Fatalf("unknown journal kind %q", kind)
	}
}

// usePostgres keeps f's journals in a schema of its own in the package's
// test database (the test skips without a server). A schema is much
// cheaper than a database, and its lock keys are its own.
func (f *fixture) usePostgres(opts pgjournal.Options) {
	f.t.Helper()
	f.dsn = testSchema(f.t)
	db, err := sql.Open("pgx", f.dsn)
	if err != nil {
		f.t.Fatal(err)
	}
	db.SetMaxOpenConns(20)
	f.t.Cleanup(func() { db.Close() })
	js, err := pgjournal.Open(f.t.Context(), db, opts)
	if err != nil {
		f.t.Fatal(err)
	}
	f.db, f.journals, f.pg = db, js, js
}

// testDatabase is the package's test database, made on first use and
// dropped by TestMain.
var testDatabase struct {
	once       sync.Once
	admin, dsn string
	name       string
	err        error
}

// testSchema makes a fresh schema in the package's test database and
// returns a connection string whose search_path is that schema.
func testSchema(t *testing.T) string {
	t.Helper()
	admin := pgtest.Admin(t)
	db := &testDatabase
	db.once.Do(func() {
		db.admin, db.name = admin, "kgtest_rotation_"+randomHex(6)
		db.err = adminExec(admin, "CREATE DATABASE "+db.name)
		db.dsn = pgtest.WithDatabase(t, admin, db.name)
	})
	if db.err != nil {
		t.Fatalf("creating the test database: %v", db.err)
	}
	schema := "t_" + randomHex(6)
	conn, err := sql.Open("pgx", db.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn, err := sql.Open("pgx", db.dsn)
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = conn.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	})
	// Commits in tests need not wait for the disk: the server is
	// throwaway, and the tests kill keygate, never the server.
	u, err := url.Parse(db.dsn)
	if err != nil || u.Scheme == "" {
		return db.dsn + " search_path=" + schema + " synchronous_commit=off"
	}
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("synchronous_commit", "off")
	u.RawQuery = q.Encode()
	return u.String()
}

// dropTestDatabase drops the package's test database, if one was made.
func dropTestDatabase() {
	if db := &testDatabase; db.name != "" {
		_ = adminExec(db.admin, "DROP DATABASE IF EXISTS "+db.name+" WITH (FORCE)")
	}
}

// adminExec runs one statement on the admin connection; names in it are
// the test's own (hex), never input.
func adminExec(admin, stmt string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", admin)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, stmt)
	return err
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// journalText is slot's journal as stored, "" when there is none.
func (f *fixture) journalText(slot string) string {
	f.t.Helper()
	if f.db == nil {
		b, err := os.ReadFile(filepath.Join(f.stateDir, slot+".journal"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			f.t.Fatal(err)
		}
		return string(b)
	}
	var text string
	err := f.db.QueryRowContext(context.Background(), `SELECT journal::text FROM rotation_journal WHERE engine = $1 AND slot = $2`, f.kind, slot).Scan(&text)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		f.t.Fatal(err)
	}
	return text
}

func (f *fixture) keys() []provider.Key {
	f.t.Helper()
	var keys []provider.Key
	var err error
	if f.kind == "local" {
		keys, err = f.openStore().ListKeys(f.t.Context())
	} else {
		keys, err = rotationtest.Open(f.platformPath, f.platformOptions()).Keys()
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return keys
}

// live returns the ids of keys that work now.
func (f *fixture) live() []string {
	var ids []string
	now := f.clock.Now()
	for _, k := range f.keys() {
		if k.RevokedAt.IsZero() && (k.ExpiresAt.IsZero() || now.Before(k.ExpiresAt)) {
			ids = append(ids, k.ID)
		}
	}
	return ids
}

func (f *fixture) envValue() string {
	f.t.Helper()
	vars, err := auth.ReadEnvFile(f.envFile)
	if err != nil {
		f.t.Fatalf("env file does not parse: %v", err)
	}
	return vars[tokenVar]
}

// works reports whether the backend accepts secret, and as which key.
func (f *fixture) works(secret string) (string, bool) {
	f.t.Helper()
	h, err := f.backend().Verify(f.t.Context(), auth.NewSecret(secret))
	if err != nil && !errors.Is(err, auth.ErrInvalidToken) {
		f.t.Fatalf("verify: %v", err)
	}
	return h.KeyID, err == nil
}

// checkEnvFile asserts the env file is private, parses, and differs from
// the original only in the credential's value.
func (f *fixture) checkEnvFile(wantValue string) {
	f.t.Helper()
	fi, err := os.Lstat(f.envFile)
	if err != nil {
		f.t.Fatal(err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		f.t.Errorf("env file mode %v, want a regular file at 0600", fi.Mode())
	}
	got, err := os.ReadFile(f.envFile)
	if err != nil {
		f.t.Fatal(err)
	}
	want := bytes.Replace(f.envBytes, []byte(f.old.Reveal()), []byte(wantValue), 1)
	if !bytes.Equal(got, want) {
		f.t.Errorf("env file changed beyond the credential:\n got %q\nwant %q", redact(got, f), redact(want, f))
	}
	if v := f.envValue(); v != wantValue {
		f.t.Errorf("env file holds %s, want %s", auth.Mask(v), auth.Mask(wantValue))
	}
}

func redact(b []byte, f *fixture) string {
	return strings.ReplaceAll(string(b), f.old.Reveal(), "<old>")
}

// checkClean asserts a rotation left nothing behind: no journal, no
// pending file. Only the lock files stay (the rotation's, and the env
// file's, which serialises writers of the env file), and temp files that recovery
// leaves alone because they are too fresh to be sure no other process is
// writing them: a kill inside the env-file write leaves a temp
// file, and a kill in preflight a probe. Those must be private.
func (f *fixture) checkClean() {
	f.t.Helper()
	if f.db != nil {
		var rows int
		if err := f.db.QueryRowContext(context.Background(), `SELECT count(*) FROM rotation_journal`).Scan(&rows); err != nil || rows != 0 {
			f.t.Errorf("%d journals left in the database (%v)", rows, err)
		}
	}
	for _, dir := range []string{f.stateDir, filepath.Dir(f.envFile)} {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) && dir == f.stateDir && f.db != nil {
			continue // only other replicas rotated
		}
		if err != nil {
			f.t.Fatal(err)
		}
		for _, e := range entries {
			n := e.Name()
			switch {
			case n == tokenVar+".lock" || n == ".env" || n == "..env.lock":
			case strings.HasPrefix(n, ".keygate-rotation-probe-"),
				dir != f.stateDir && strings.HasPrefix(n, "..env") && strings.Trim(n[len("..env"):], "0123456789") == "":
				if fi, err := e.Info(); err != nil || fi.Mode().Perm() != 0o600 {
					f.t.Errorf("temp file %s is not private", n)
				}
			default:
				f.t.Errorf("left behind: %s", filepath.Join(dir, n))
			}
		}
	}
}

// noSecrets fails if text contains either secret or anything token-shaped.
func noSecrets(t *testing.T, what, text string, secrets ...auth.Secret) {
	t.Helper()
	for _, s := range secrets {
		if !s.IsZero() && strings.Contains(text, s.Reveal()) {
			t.Errorf("%s contains a secret: %s", what, strings.ReplaceAll(text, s.Reveal(), "<SECRET>"))
		}
	}
	for _, prefix := range []string{auth.TokenPrefix, "fk_"} {
		if strings.Contains(text, prefix) {
			t.Errorf("%s contains a token-shaped string", what)
		}
	}
}

// failingPut is a destination whose writes all fail with err.
type failingPut struct {
	rotation.Destinations
	err error
}

func (p failingPut) Put(s delivery.Spec, _ string, _ auth.Secret) (delivery.Spec, error) {
	return s, p.err
}
