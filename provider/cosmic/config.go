package cosmic

import (
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider/upstream"
)

// Environment variables the Cosmic provider reads.
const (
	EnvBucketSlug = "COSMIC_BUCKET_SLUG"
	EnvReadKey    = "COSMIC_READ_KEY"
	EnvWriteKey   = "COSMIC_WRITE_KEY"
	EnvPAT        = "COSMIC_PAT"
	EnvAgentKey   = "COSMIC_AGENT_KEY"
	EnvAPIURL     = "COSMIC_API_URL"
	EnvDAPIURL    = "COSMIC_DAPI_URL"
)

// Production base URLs (docs/providers/cosmic.md, Hosts). Staging and the
// fake are reached through COSMIC_API_URL and COSMIC_DAPI_URL.
const (
	DefaultAPIURL  = "https://api.cosmicjs.com/v3"
	DefaultDAPIURL = "https://dapi.cosmicjs.com/v3"
)

// Config is the Cosmic provider's configuration. Credentials are held as
// auth.Credential, so a stray %v prints [REDACTED].
type Config struct {
	BucketSlug string
	// ReadKey and WriteKey are the bucket's API keys. Their format is not
	// documented (docs/providers/cosmic.md, Unknown), so only their hygiene
	// is checked.
	ReadKey  auth.Credential
	WriteKey auth.Credential
	// PAT is a personal access token (cos_...) for the dashboard API.
	PAT auth.Credential
	// AgentKey is an agent key (agk_...) for /v3/agents/status.
	AgentKey auth.Credential
	APIURL   string // data plane, e.g. https://api.cosmicjs.com/v3
	DAPIURL  string // dashboard API, e.g. https://dapi.cosmicjs.com/v3
}

// bucketSlugPattern is deliberately loose (the real rule is not documented)
// but keeps anything that could break out of a URL path segment.
var bucketSlugPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`) })

// LoadConfig reads the COSMIC_* variables through get, which returns a
// value and its source ("env" or "env_file"). configured is false when no
// Cosmic credential is set. Errors name the variable and the problem, never
// the value.
func LoadConfig(get func(name string) (value, source string, ok bool)) (cfg Config, configured bool, err error) {
	cred := func(name string) auth.Credential {
		v, src, ok := get(name)
		if !ok || v == "" {
			return auth.Credential{}
		}
		return auth.Credential{Secret: auth.NewSecret(v), Source: auth.Source(src), Var: name}
	}
	cfg.ReadKey, cfg.WriteKey = cred(EnvReadKey), cred(EnvWriteKey)
	cfg.PAT, cfg.AgentKey = cred(EnvPAT), cred(EnvAgentKey)
	if cfg.ReadKey.Secret.IsZero() && cfg.WriteKey.Secret.IsZero() && cfg.PAT.Secret.IsZero() && cfg.AgentKey.Secret.IsZero() {
		return Config{}, false, nil
	}

	checks := []struct {
		c    auth.Credential
		kind string // the auth.Classify id the value must have; "" for bucket keys
	}{
		{cfg.ReadKey, ""}, {cfg.WriteKey, ""}, {cfg.PAT, "cosmic_pat"}, {cfg.AgentKey, "cosmic_agent_key"},
	}
	for _, ch := range checks {
		if ch.c.Secret.IsZero() {
			continue
		}
		if err := checkKey(ch.c.Var, ch.c.Secret.Reveal(), ch.kind); err != nil {
			return Config{}, true, err
		}
	}

	slug, _, _ := get(EnvBucketSlug)
	cfg.BucketSlug = strings.TrimSpace(slug)
	switch {
	case cfg.BucketSlug == "" && (!cfg.ReadKey.Secret.IsZero() || !cfg.WriteKey.Secret.IsZero()):
		return Config{}, true, fmt.Errorf("%s is not set: the bucket keys (%s, %s) need the slug of their bucket", EnvBucketSlug, EnvReadKey, EnvWriteKey)
	case cfg.BucketSlug != "" && !bucketSlugPattern().MatchString(cfg.BucketSlug):
		return Config{}, true, fmt.Errorf("%s is not a bucket slug: use letters, digits, '-', '_' or '.' (at most 128)", EnvBucketSlug)
	}

	if cfg.APIURL, err = baseURL(get, EnvAPIURL, DefaultAPIURL); err != nil {
		return Config{}, true, err
	}
	if cfg.DAPIURL, err = baseURL(get, EnvDAPIURL, DefaultDAPIURL); err != nil {
		return Config{}, true, err
	}
	return cfg, true, nil
}

// checkKey refuses values that cannot be a Cosmic credential of the kind
// the variable holds. wantKind "" means a bucket key, whose format is
// unknown: it only must not be a credential of another kind.
func checkKey(name, v, wantKind string) error {
	for _, r := range v {
		switch {
		case r == '\r' || r == '\n':
			return fmt.Errorf("%s contains a line break: remove the CR/LF (a copy-paste artefact?)", name)
		case r == 0:
			return fmt.Errorf("%s contains a NUL byte", name)
		case r == ' ' || r == '\t':
			return fmt.Errorf("%s contains a space or tab: a key is one word; remove the blanks or quotes around it", name)
		case r < 0x20 || r == 0x7f || r > 0x7e:
			return fmt.Errorf("%s contains a control or non-ASCII character", name)
		}
	}
	kind := auth.Classify(v)
	if wantKind != "" {
		if kind.ID != wantKind {
			want := map[string]string{"cosmic_pat": "a Cosmic personal access token (cos_ followed by at least 8 letters, digits, _ or -)",
				"cosmic_agent_key": "a Cosmic agent key (agk_ followed by at least 8 letters, digits, _ or -)"}[wantKind]
			if kind.ID != auth.UnknownKind.ID {
				return fmt.Errorf("%s holds a %s, not %s", name, kind.Label, want)
			}
			return fmt.Errorf("%s is not %s", name, want)
		}
		return nil
	}
	if kind.ID != auth.UnknownKind.ID {
		return fmt.Errorf("%s holds a %s, not a Cosmic bucket key (Bucket Settings > API Access)", name, kind.Label)
	}
	if len(v) < 8 {
		return fmt.Errorf("%s is too short to be a Cosmic bucket key", name)
	}
	return nil
}

// baseURL reads an optional base-URL override. Plain http is accepted only
// for loopback hosts (the fake, a local proxy): keys travel in headers and,
// for reads, in the query string.
func baseURL(get func(string) (string, string, bool), name, def string) (string, error) {
	v, _, ok := get(name)
	if !ok || strings.TrimSpace(v) == "" {
		return def, nil
	}
	return upstream.CheckBaseURL(name, strings.TrimSpace(v))
}

// secrets lists the configured secret values.
func (c Config) secrets() []string {
	var out []string
	for _, cr := range []auth.Credential{c.ReadKey, c.WriteKey, c.PAT, c.AgentKey} {
		if !cr.Secret.IsZero() {
			out = append(out, cr.Secret.Reveal())
		}
	}
	return out
}
