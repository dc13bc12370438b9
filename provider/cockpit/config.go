package cockpit

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider/upstream"
)

// Environment variables the Cockpit provider reads.
const (
	EnvURL    = "COCKPIT_URL"
	EnvAPIKey = "COCKPIT_API_KEY"
	EnvModels = "COCKPIT_MODELS"
)

// Config is the Cockpit provider's configuration.
type Config struct {
	// URL is the site URL; the API is below it at /api (a space's URL,
	// {site}/:{space}, works the same way).
	URL string
	// APIKey is a custom key (API-...) or a user key (USR-...).
	APIKey auth.Credential
	// Models are the content models keygate offers: Cockpit's public API
	// cannot list them.
	Models []string
}

// jwtShape is a token Cockpit treats as an anonymous JWT
// (docs/providers/cockpit.md A4): it would be denied everything.
var jwtShape = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$`) })

// LoadConfig reads the COCKPIT_* variables through get. configured is
// false when COCKPIT_API_KEY is not set. Errors name the variable and the
// problem, never the value.
func LoadConfig(get func(name string) (value, source string, ok bool)) (cfg Config, configured bool, err error) {
	key, src, ok := get(EnvAPIKey)
	if !ok || key == "" {
		return Config{}, false, nil
	}
	if err := checkKey(key); err != nil {
		return Config{}, true, err
	}
	cfg.APIKey = auth.Credential{Secret: auth.NewSecret(key), Source: auth.Source(src), Var: EnvAPIKey}

	u, _, _ := get(EnvURL)
	if strings.TrimSpace(u) == "" {
		return Config{}, true, fmt.Errorf("%s is not set: give the Cockpit site URL (the API is at <url>/api)", EnvURL)
	}
	if cfg.URL, err = upstream.CheckBaseURL(EnvURL, strings.TrimSpace(u)); err != nil {
		return Config{}, true, err
	}
	cfg.URL = strings.TrimSuffix(cfg.URL, "/api")

	models, _, _ := get(EnvModels)
	for m := range strings.SplitSeq(models, ",") {
		m = strings.TrimSpace(m)
		if m == "" {
			continue
		}
		if !auth.TypeNamePattern().MatchString(m) {
			return Config{}, true, fmt.Errorf("%s: model %q cannot be a keygate content type: names must match %s", EnvModels, m, auth.TypeNamePattern())
		}
		if !slices.Contains(cfg.Models, m) {
			cfg.Models = append(cfg.Models, m)
		}
	}
	return cfg, true, nil
}

func checkKey(v string) error {
	for _, r := range v {
		switch {
		case r == '\r' || r == '\n':
			return fmt.Errorf("%s contains a line break: remove the CR/LF (a copy-paste artefact?)", EnvAPIKey)
		case r == 0:
			return fmt.Errorf("%s contains a NUL byte", EnvAPIKey)
		case r == ' ' || r == '\t':
			return fmt.Errorf("%s contains a space or tab: a key is one word; remove the blanks or quotes around it", EnvAPIKey)
		case r < 0x20 || r == 0x7f || r > 0x7e:
			return fmt.Errorf("%s contains a control or non-ASCII character", EnvAPIKey)
		}
	}
	kind := auth.Classify(v)
	if kind.Provider != "" && kind.Provider != "cockpit" {
		return fmt.Errorf("%s holds a %s, not a Cockpit API key (API-... or USR-...)", EnvAPIKey, kind.Label)
	}
	if jwtShape().MatchString(v) {
		return fmt.Errorf("%s looks like a JWT: Cockpit treats those as anonymous; use a custom key (API-...) or a user key (USR-...)", EnvAPIKey)
	}
	if !strings.HasPrefix(v, "API-") && !strings.HasPrefix(v, "USR-") {
		// The server checks no format, but the admin UI issues only these
		// two shapes; anything else is a mistake (or the "public" key,
		// which needs no configuration).
		return fmt.Errorf("%s must be a Cockpit custom key (API-...) or user key (USR-...)", EnvAPIKey)
	}
	if len(v) < 12 {
		return fmt.Errorf("%s is too short to be a Cockpit key", EnvAPIKey)
	}
	return nil
}
