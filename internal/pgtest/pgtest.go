// Package pgtest gives a test its own Postgres database on the server named
// by KEYGATE_TEST_POSTGRES (an admin connection string, loopback only). The
// README's default test command needs nothing but Go, so without the
// variable these tests skip; .ci/run starts a throwaway server, sets the
// variable and sets KEYGATE_REQUIRE_POSTGRES=1, which turns a skip into a
// failure so CI cannot pass without running them.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// Env is the variable that names the test server.
const Env = "KEYGATE_TEST_POSTGRES"

// Require is the variable that makes a missing server a failure.
const Require = "KEYGATE_REQUIRE_POSTGRES"

// Admin returns the admin connection string, or skips the test (fails it
// when Require is set).
func Admin(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(Env)
	if dsn == "" {
		if os.Getenv(Require) != "" {
			t.Fatalf("%s is set but %s is not: start a server with .ci/postgres", Require, Env)
		}
		t.Skipf("%s is not set: no Postgres to test against (.ci/run starts one)", Env)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("%s: %v", Env, err)
	}
	if !loopback(cfg.Host) {
		t.Fatalf("%s names host %q: tests talk only to loopback", Env, cfg.Host)
	}
	return dsn
}

func loopback(host string) bool {
	if strings.HasPrefix(host, "/") || host == "localhost" {
		return true // a Unix socket directory, or the local name
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// NewDatabase creates an empty database for this test and returns its
// connection string; the database is dropped when the test ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := Admin(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "kgtest_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The name is ours (hex), never input.
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("creating test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db, err := sql.Open("pgx", admin)
		if err != nil {
			return
		}
		defer db.Close()
		_, _ = db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return WithDatabase(t, admin, name)
}

// WithDatabase returns dsn pointing at database name.
func WithDatabase(t testing.TB, dsn, name string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		u.Path = "/" + name
		return u.String()
	}
	return dsn + " dbname=" + name
}
