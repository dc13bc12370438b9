package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kong"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/agrenting"
	"github.com/keygate/keygate/provider/cencori"
	"github.com/keygate/keygate/provider/cockpit"
	"github.com/keygate/keygate/provider/cosmic"
	"github.com/keygate/keygate/provider/local"
	"github.com/keygate/keygate/textsafe"
)

// DoctorCmd checks keygate's setup and says what to fix. It changes
// nothing: the store is opened read-only, the providers are asked only
// what auth_whoami asks them, and no secret is printed.
type DoctorCmd struct {
	config.Serve
	ProviderTimeout time.Duration `name:"provider-timeout" default:"10s" placeholder:"DURATION" help:"How long the live check of each remote provider may take."`
}

func (c *DoctorCmd) Run(rt *invocation, kctx *kong.Context) error {
	if c.ProviderTimeout <= 0 || c.ProviderTimeout > 5*time.Minute {
		return errors.New("doctor: --provider-timeout must be a duration from 1ms to 5m, e.g. 10s")
	}
	r := &report{w: rt.Out, redactor: auth.NewRedactor(), now: time.Now()}
	fmt.Fprintf(rt.Out, "keygate doctor (keygate %s)\n", rt.version)

	var invalid []error
	env, err := rt.env(c.EnvFile)
	if _, ferr := rt.resolver.load(c.EnvFile); ferr != nil {
		// The env file cannot be read: go on with the environment alone.
		r.problem(ferr.Error(), "fix the env file's syntax or permissions, or point --env-file at the right file")
		env, err = config.Env{Lookup: rt.resolver.lookup}, errors.Join(rt.resolver.invalid...)
	}
	if err != nil {
		invalid = append(invalid, err)
	}
	cfg, err := c.Serve.Config(env)
	if err != nil {
		invalid = append(invalid, err)
	}
	if !cfg.Token.Secret.IsZero() {
		r.redactor.Add(cfg.Token.Secret.Reveal())
	}
	c.configuration(r, cfg, settingsOf(kctx, env), invalid)

	store := c.store(rt.ctx, r, cfg)
	c.token(rt.ctx, r, cfg, store)
	if store != nil {
		_ = store.Close() // opened read-only: nothing is lost
	}
	c.providers(rt.ctx, r, env)

	fmt.Fprintln(rt.Out)
	if n := len(r.problems); n > 0 {
		fmt.Fprintf(rt.Out, "%d %s to fix (the lines marked FIX above)\n", n, plural(n, "problem", "problems"))
		return fmt.Errorf("doctor: %d %s to fix", n, plural(n, "problem", "problems"))
	}
	_, err = fmt.Fprintln(rt.Out, "all is well")
	return err
}

// report writes doctor's findings. Every line goes through a redactor that
// knows the secrets doctor has seen, as a last guard; values are masked
// and escaped before that.
type report struct {
	w        io.Writer
	redactor *auth.Redactor
	now      time.Time
	problems []string
}

func (r *report) print(format string, args ...any) {
	fmt.Fprintln(r.w, r.redactor.Redact(fmt.Sprintf(format, args...)))
}

func (r *report) section(title string) { r.print("\n%s", title) }

func (r *report) ok(format string, args ...any)   { r.print("  ok    "+format, args...) }
func (r *report) info(format string, args ...any) { r.print("  info  "+format, args...) }
func (r *report) warn(format string, args ...any) { r.print("  warn  "+format, args...) }

// problem is something that keeps keygate from working as configured, and
// what to do about it, on one line.
func (r *report) problem(what, fix string) {
	line := strings.TrimSuffix(what, ".") + "; fix: " + fix
	r.problems = append(r.problems, line)
	r.print("  FIX   %s", line)
}

// table prints rows of cells, aligned.
func (r *report) table(rows [][]string) {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	for _, row := range rows {
		fmt.Fprintln(tw, "    "+strings.Join(row, "\t"))
	}
	_ = tw.Flush() // into a strings.Builder, which cannot fail
	for line := range strings.Lines(b.String()) {
		r.print("%s", strings.TrimRight(line, " \n"))
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// configuration prints every setting with where it came from.
func (c *DoctorCmd) configuration(r *report, cfg config.Config, settings []setting, invalid []error) {
	r.section("Configuration (a flag wins over the environment, the environment over the env file, the env file over the default)")
	var rows [][]string
	for _, s := range settings {
		v := s.value
		if s.flag.Name == "env-file" && cfg.EnvFile != "" {
			v = cfg.EnvFile // as resolved against the working directory
		}
		rows = append(rows, []string{"--" + s.flag.Name, shown(v), s.origin})
	}
	tok := "not set"
	if !cfg.Token.Secret.IsZero() {
		tok = cfg.Token.Secret.Masked()
	}
	rows = append(rows, []string{auth.TokenVar, tok, sourceName(string(cfg.Token.Source))})
	r.table(rows)
	if cfg.AuditFile != "" {
		r.info("audit journal: %s", shown(cfg.AuditFile))
	}
	for _, err := range invalid {
		for line := range strings.SplitSeq(err.Error(), "\n") {
			r.problem(line, "correct that flag or variable (keygate --help lists them)")
		}
	}
}

// shown is a setting's value as doctor prints it: escaped, with any
// password in a URL replaced by ***.
func shown(v string) string {
	if v == "" {
		return `""`
	}
	return textsafe.Escape(urlPassword.ReplaceAllString(v, "$1:***@"))
}

// urlPassword matches the user:password@ of a URL, also once a path
// function has folded its // into one.
var urlPassword = regexp.MustCompile(`(?i)([a-z][a-z0-9+.-]*:/+[^/@\s:]*):[^@\s]*@`)

// sourceName is where a variable came from, in words.
func sourceName(src string) string {
	switch auth.Source(src) {
	case auth.SourceEnv:
		return fromEnv
	case auth.SourceEnvFile:
		return fromEnvFile
	case "":
		return "-"
	}
	return strings.ReplaceAll(src, "_", " ")
}

// store reports on the embedded store, opened read-only; nil when it could
// not be opened.
func (c *DoctorCmd) store(ctx context.Context, r *report, cfg config.Config) *local.Store {
	r.section("Store")
	if cfg.Store == "" {
		return nil
	}
	s, err := local.OpenReadOnly(ctx, cfg.Store, local.Options{})
	var schema *local.SchemaError
	switch {
	case errors.Is(err, local.ErrNoStore):
		r.info("no store yet at %s; `keygate serve` creates it", shown(cfg.Store))
		return nil
	case errors.As(err, &schema) && schema.Have < schema.Want:
		r.info("%s: %s (keygate doctor reads only the current schema)", shown(cfg.Store), schema)
		return nil
	case errors.As(err, &schema):
		r.problem(fmt.Sprintf("%s was written by a newer keygate (schema version %d; this keygate knows %d)", shown(cfg.Store), schema.Have, schema.Want),
			"upgrade keygate, or point --store at another store")
		return nil
	case err != nil:
		r.problem(fmt.Sprintf("cannot open the store %s: %v", shown(cfg.Store), err), "check --store and the file's permissions")
		return nil
	}
	keys, err := s.ListKeys(ctx)
	if err != nil {
		r.problem(fmt.Sprintf("cannot list the store's keys: %v", err), "check the store file; keygate serve reports the same error")
		return s
	}
	var active, revoked, expired int
	var expiring []provider.Key
	for _, k := range keys {
		switch {
		case !k.RevokedAt.IsZero() && !k.RevokedAt.After(r.now):
			revoked++
		case !r.now.Before(k.ExpiresAt):
			expired++
		default:
			active++
			if k.ExpiresAt.Sub(r.now) < cfg.ExpiryWarning {
				expiring = append(expiring, k)
			}
		}
	}
	r.ok("%s: schema version %d (current); %d %s: %d active, %d revoked, %d expired",
		shown(cfg.Store), s.SchemaVersion(), len(keys), plural(len(keys), "key", "keys"), active, revoked, expired)
	for _, k := range expiring {
		r.warn("key %s %q (%s) expires %s, in %s, within the expiry warning (%s): rotate it with credentials_rotate, or mint a successor with keygate token create",
			k.ID, textsafe.Escape(k.Name), textsafe.Escape(k.Masked), k.ExpiresAt.Format(time.DateOnly), until(k.ExpiresAt.Sub(r.now)), cfg.ExpiryWarning)
	}
	return s
}

// until says how long d is, in days when it is more than one.
func until(d time.Duration) string {
	if days := int(d / (24 * time.Hour)); days > 1 {
		return fmt.Sprintf("%d days", days)
	}
	return d.Round(time.Minute).String()
}

// token checks keygate's own token against the store.
func (c *DoctorCmd) token(ctx context.Context, r *report, cfg config.Config, store *local.Store) {
	r.section("keygate's token (" + auth.TokenVar + ")")
	tok := cfg.Token
	mint := "keygate token create --name NAME --scopes LIST --env-var " + auth.TokenVar
	if tok.Secret.IsZero() {
		_, noStore := os.Stat(cfg.Store)
		switch {
		case cfg.Transport == "http":
			r.info("not set: over HTTP every caller brings its own token, so keygate needs none of its own")
		case errors.Is(noStore, fs.ErrNotExist):
			r.info("not set: keygate serve's first run mints an admin token and writes it to %s", shown(cfg.EnvFile))
		default:
			r.problem("not set: over stdio keygate then hides every tool that needs a scope", mint)
		}
		return
	}
	where := "the environment"
	replace := "set " + auth.TokenVar + " in your environment to a working token (" + mint + " writes one to the env file instead)"
	if tok.Source == auth.SourceEnvFile {
		where = shown(cfg.EnvFile)
		replace = "remove " + auth.TokenVar + " from " + where + ", then run " + mint
	}
	r.info("%s from %s", tok.Secret.Masked(), where)
	parsed, reason, err := auth.ParseToken(tok.Secret.Reveal())
	if err != nil {
		what := "does not have a keygate token's shape (kg_pat_ and 58 more characters)"
		if reason == "bad_checksum" {
			what = "fails its checksum: it was mistyped or cut short"
		}
		r.problem(auth.TokenVar+" "+what, "copy the whole token again, or "+replace)
		return
	}
	if store == nil {
		if _, err := os.Stat(cfg.Store); errors.Is(err, fs.ErrNotExist) {
			r.problem(fmt.Sprintf("%s is set, but there is no store at %s to check it against", auth.TokenVar, shown(cfg.Store)),
				"point --store (KEYGATE_STORE) at the store that issued the token")
		} else {
			r.info("not checked against the store (see Store above)")
		}
		return
	}
	p, err := store.Verify(ctx, tok.Secret.Reveal())
	switch {
	case errors.Is(err, auth.ErrInvalidToken):
		r.problem(auth.TokenVar+" does not verify: "+whyInvalid(ctx, store, parsed.PublicID, r.now), replace)
		return
	case err != nil:
		r.problem(fmt.Sprintf("cannot check %s against the store: %v", auth.TokenVar, err), "check the store file; keygate serve reports the same error")
		return
	}
	r.ok("verifies: key %s %q, scopes %s, expires %s (in %s)", p.KeyID, textsafe.Escape(p.Name),
		textsafe.Escape(strings.Join(scopeNames(p.Scopes), ", ")), p.ExpiresAt.Format(time.DateOnly), until(p.ExpiresAt.Sub(r.now)))
	if p.ExpiresAt.Sub(r.now) < cfg.ExpiryWarning {
		r.problem(fmt.Sprintf("%s expires %s, within the expiry warning (%s)", auth.TokenVar, p.ExpiresAt.Format(time.DateOnly), cfg.ExpiryWarning),
			"rotate it with credentials_rotate (keygate rewrites the env file and follows the new key), or "+replace)
	}
}

func scopeNames(s auth.Scopes) []string {
	out := make([]string, len(s))
	for i, sc := range s {
		out[i] = sc.String()
	}
	return out
}

// whyInvalid says why a well-formed token does not verify. The operator
// can read the store anyway, so doctor may tell these cases apart.
func whyInvalid(ctx context.Context, store *local.Store, id string, now time.Time) string {
	k, err := store.GetKey(ctx, id)
	switch {
	case errors.Is(err, provider.ErrNotFound):
		return "no key in this store has its id " + id + " (is --store the store that issued it?)"
	case err != nil:
		return "the store could not be read: " + err.Error()
	case !k.RevokedAt.IsZero() && !k.RevokedAt.After(now):
		return fmt.Sprintf("key %s was revoked on %s", id, k.RevokedAt.Format(time.DateOnly))
	case !now.Before(k.ExpiresAt):
		return fmt.Sprintf("key %s expired on %s", id, k.ExpiresAt.Format(time.DateOnly))
	}
	return "its secret does not match key " + id + " (mistyped, or an old copy)"
}

// remoteInspector is what doctor asks of a remote provider: what
// auth_whoami asks (Describe), and which values are secrets.
type remoteInspector interface {
	Describe(ctx context.Context) (provider.Description, error)
	Secrets() []string
}

// lookupFunc is how the providers' LoadConfig read their variables.
type lookupFunc = func(name string) (value, source string, ok bool)

// inspectors build each remote provider config.Providers lists with its
// own client, as app does, but with nothing around it: no rotation
// engine, so nothing an earlier process left unfinished is settled here.
var inspectors = map[string]func(get lookupFunc) (remoteInspector, bool, error){
	cosmic.Name: func(get lookupFunc) (remoteInspector, bool, error) {
		cfg, ok, err := cosmic.LoadConfig(get)
		if err != nil || !ok {
			return nil, ok, err
		}
		c, err := cosmic.New(cfg, cosmic.Options{})
		return c, true, err
	},
	cockpit.Name: func(get lookupFunc) (remoteInspector, bool, error) {
		cfg, ok, err := cockpit.LoadConfig(get)
		if err != nil || !ok {
			return nil, ok, err
		}
		c, err := cockpit.New(cfg, cockpit.Options{})
		return c, true, err
	},
	cencori.Name: func(get lookupFunc) (remoteInspector, bool, error) {
		cfg, ok, err := cencori.LoadConfig(get)
		if err != nil || !ok {
			return nil, ok, err
		}
		c, err := cencori.New(cfg, cencori.Options{})
		return c, true, err
	},
	agrenting.Name: func(get lookupFunc) (remoteInspector, bool, error) {
		cfg, ok, err := agrenting.LoadConfig(get)
		if err != nil || !ok {
			return nil, ok, err
		}
		c, err := agrenting.New(cfg, agrenting.Options{})
		return c, true, err
	},
}

// providers checks each configured remote provider live.
func (c *DoctorCmd) providers(ctx context.Context, r *report, env config.Env) {
	r.section("Remote providers (local, the embedded store, is above)")
	get := func(name string) (string, string, bool) {
		v, src, ok := env.Get(name)
		return v, string(src), ok
	}
	var idle []string
	defer func() {
		if len(idle) > 0 {
			r.info("not configured: %s", strings.Join(idle, ", "))
		}
	}()
	for _, p := range config.Providers {
		build, ok := inspectors[p.Name]
		if !ok {
			r.problem(fmt.Sprintf("%s: keygate doctor cannot check this provider", p.Title), "please report it")
			continue
		}
		insp, configured, err := build(get)
		if !configured && err == nil {
			idle = append(idle, p.Name)
			continue
		}
		// The redactor learns the provider's secrets before anything about
		// it prints; without a client to say which values are secrets,
		// every value is one.
		var secrets []string
		if insp != nil {
			secrets = insp.Secrets()
		} else {
			for _, v := range p.Variables {
				if val, _, ok := env.Get(v.Name); ok {
					secrets = append(secrets, val, strings.TrimSpace(val))
				}
			}
		}
		for _, s := range secrets {
			r.redactor.Add(s)
		}
		r.print("  %s", p.Title)
		c.variables(r, p, env, secrets, err == nil)
		if err != nil {
			r.problem(textsafe.Escape(err.Error()), "correct the variable it names")
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, c.ProviderTimeout)
		d, err := insp.Describe(cctx)
		cancel()
		if err != nil {
			r.problem(fmt.Sprintf("the live check of %s failed: %s", p.Title, textsafe.Escape(err.Error())),
				fmt.Sprintf("check the network and the provider's URL variable (try again with a longer --provider-timeout than %s)", c.ProviderTimeout))
			continue
		}
		describe(r, p, d)
	}
}

// variables lists the provider's variables that are set: a secret masked,
// the rest escaped (URLs without their password). When the client could
// not be built nothing says which values are secrets, so all are masked.
func (c *DoctorCmd) variables(r *report, p config.Provider, env config.Env, secrets []string, known bool) {
	var rows [][]string
	for _, v := range p.Variables {
		val, src, ok := env.Get(v.Name)
		if !ok {
			continue
		}
		trimmed := strings.TrimSpace(val)
		shownVal := shown(trimmed)
		if !known || slices.Contains(secrets, trimmed) || slices.Contains(secrets, val) {
			shownVal = auth.Mask(trimmed)
		}
		rows = append(rows, []string{v.Name, shownVal, sourceName(string(src))})
	}
	r.table(rows)
}

// describe prints what the provider said about its credentials.
func describe(r *report, p config.Provider, d provider.Description) {
	if d.Reachable {
		r.ok("reachable")
	} else {
		r.problem(p.Title+" could not be reached or answered with an error", "check its URL variable and your network")
	}
	if d.Owner != "" {
		r.info("owner: %s", textsafe.Escape(d.Owner))
	}
	rejected := map[string]bool{}
	for _, cr := range d.Credentials {
		line := fmt.Sprintf("%s (%s, %s): %s", cr.Name, textsafe.Escape(cr.Label), textsafe.Escape(cr.Masked), cr.Verified)
		if cr.Detail != "" {
			line += ": " + textsafe.Escape(cr.Detail)
		}
		if cr.Verified == provider.VerifiedOK || cr.Verified == provider.VerifiedNotChecked {
			grants := "nothing in keygate's scopes by itself"
			if len(cr.Grants) > 0 {
				grants = strings.Join(cr.Grants, ", ")
			}
			line += "; may: " + textsafe.Escape(grants)
		}
		switch cr.Verified {
		case provider.VerifiedOK:
			r.ok("%s", line)
		case provider.VerifiedRejected:
			rejected[cr.Name] = true
			r.problem(line, fmt.Sprintf("put a working key in %s (from %s)", cr.Name, sourceName(cr.Source)))
		case provider.VerifiedUnreachable:
			if d.Reachable {
				r.problem(line, "check the provider's URL variable and your network")
			} else {
				r.warn("%s", line)
			}
		default:
			r.info("%s", line)
		}
	}
	if len(rejected) > 0 && d.RotateHint != "" {
		r.info("replacing a key: %s", textsafe.Escape(d.RotateHint))
	}
	for _, pr := range d.Problems {
		// A refused credential is already a problem above.
		if name, _, _ := strings.Cut(pr, " "); rejected[name] {
			continue
		}
		r.warn("%s", textsafe.Escape(pr))
	}
}
