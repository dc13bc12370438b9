package transport

import (
	"log/slog"
	"path/filepath"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/credentials"
	"github.com/keygate/keygate/delivery"
	"github.com/keygate/keygate/identity"
	"github.com/keygate/keygate/provider/local"
	"github.com/keygate/keygate/tools"
)

// newDeps wires keygate's tools over the local store, the one way this
// package's tests build them. envFile is keygate's env file, in dir; now
// may be nil (the wall clock).
func newDeps(store *local.Store, ident *identity.Identity, redactor *auth.Redactor, dir, envFile string, logger *slog.Logger, now func() time.Time) *tools.Deps {
	return &tools.Deps{
		Providers:   tools.NewProviders(tools.Provider{Name: "local", Content: store, Ring: credentials.Ring{Provider: "local", Local: true}}),
		Identity:    ident,
		Redactor:    redactor,
		EnvFile:     envFile,
		Credentials: &credentials.Service{Store: store, Places: delivery.Places{EnvFile: envFile, KeysDir: filepath.Join(dir, "keys")}},
		HTTP:        ident.PerRequest(),
		Logger:      logger,
		Now:         now,
	}
}
