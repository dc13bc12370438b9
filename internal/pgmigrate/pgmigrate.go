// Package pgmigrate applies one component's versioned schema migrations to
// a Postgres database. Each component of keygate that keeps state in
// Postgres (the store, the audit journal, the rotation journal) owns its
// tables and its list of steps; the versions are kept per component in
// keygate_schema. Replicas that start together apply each step once: the
// migration runs under a transaction-scoped advisory lock.
package pgmigrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// lockKey is the advisory lock every keygate migration takes ("kgschema").
const lockKey = 0x6b67736368656d61

// Apply brings component's schema to len(steps) and reports whether it had
// none before. steps[i] takes it from version i to i+1; only ever append.
// A database written by a newer keygate is refused rather than guessed at.
func Apply(ctx context.Context, db *sql.DB, component string, steps []string) (empty bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("migrating %s schema: %w", component, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback() // err says what failed; the rollback adds nothing.
		}
	}()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(lockKey)); err != nil {
		return false, fmt.Errorf("migrating %s schema: waiting for other replicas: %w", component, err)
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS keygate_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL)`); err != nil {
		return false, fmt.Errorf("migrating %s schema: %w", component, err)
	}
	var version int
	err = tx.QueryRowContext(ctx, `SELECT version FROM keygate_schema WHERE component = $1`, component).Scan(&version)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		version, err = 0, nil
	case err != nil:
		return false, fmt.Errorf("migrating %s schema: reading its version: %w", component, err)
	}
	if version > len(steps) {
		return false, fmt.Errorf("the %s schema is at version %d but this keygate knows only up to %d; upgrade keygate", component, version, len(steps))
	}
	for i := version; i < len(steps); i++ {
		if _, err := tx.ExecContext(ctx, steps[i]); err != nil {
			return false, fmt.Errorf("applying %s schema migration %d: %w", component, i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO keygate_schema (component, version) VALUES ($1, $2)
		ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version`, component, len(steps)); err != nil {
		return false, fmt.Errorf("recording %s schema version: %w", component, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migrating %s schema: %w", component, err)
	}
	return version == 0, nil
}

// Version reads component's schema version without changing anything, for
// a reader that must not migrate (keygate doctor). found is false when the
// database holds no schema for component: no keygate_schema table, or no
// row for component in it.
func Version(ctx context.Context, db *sql.DB, component string) (version int, found bool, err error) {
	var exists bool
	if err := db.QueryRowContext(ctx, `SELECT to_regclass('keygate_schema') IS NOT NULL`).Scan(&exists); err != nil {
		return 0, false, fmt.Errorf("reading %s schema version: %w", component, err)
	}
	if !exists {
		return 0, false, nil
	}
	err = db.QueryRowContext(ctx, `SELECT version FROM keygate_schema WHERE component = $1`, component).Scan(&version)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("reading %s schema version: %w", component, err)
	}
	return version, true, nil
}
