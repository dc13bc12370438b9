package agrenting

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider/upstream"
)

// The variables the provider reads.
const (
	// EnvAPIKey holds an agent API key, sent as X-API-Key (and exchanged
	// for a session token by Authenticate).
	EnvAPIKey = "AGRENTING_API_KEY"
	// EnvToken holds a user token (ap_...), sent as Authorization: Bearer
	// together with EnvAgentID as X-Agent-ID.
	EnvToken = "AGRENTING_TOKEN"
	// EnvAgentID is the agent to act as: required with EnvToken; with an
	// API key it is learned from Authenticate when unset.
	EnvAgentID = "AGRENTING_AGENT_ID"
	// EnvAPIURL overrides the API base, which includes /api/v1.
	EnvAPIURL = "AGRENTING_API_URL"
	// EnvRevokePath overrides the path a key is revoked at (DELETE),
	// relative to the API base, with the placeholders :agent_id and :id
	// (the credential): Agrenting documents only "DELETE credential
	// endpoint" (docs/providers/agrenting.md, "Keys").
	EnvRevokePath = "AGRENTING_REVOKE_PATH"
	// envRotatePath was the override of an undocumented rotate path.
	// keygate now rotates with the documented POST /auth/rotate-key, and
	// refuses the variable so a stale setting is not silently ignored.
	envRotatePath = "AGRENTING_ROTATE_PATH"
)

// DefaultAPIURL is Agrenting's API base.
const DefaultAPIURL = "https://agrenting.com/api/v1"

// The credential endpoints, in one place (docs/providers/agrenting.md,
// "Keys"). Documented: POST /auth/rotate-key rotates the caller's own key
// (the old one is revoked at once, a new one returned) and POST
// /agents/:id/credentials creates one. Not documented: a list endpoint (GET
// on the same path is keygate's guess) and the revoke path ("DELETE
// credential endpoint" only), which configuration can override.
const (
	RotateKeyPath     = "/auth/rotate-key"
	CredentialsPath   = "/agents/:agent_id/credentials" // GET list (guessed), POST create (documented)
	DefaultRevokePath = "/agents/:agent_id/credentials/:id"
)

var (
	idPattern       = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`) })
	pathPattern     = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(/[A-Za-z0-9_.:-]+)+$`) })
	placeholderInfo = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`:[A-Za-z_]+`) })
	// kindAgentKey names an agent API key: its format is unknown, so
	// auth.Classify cannot tell one.
	kindAgentKey = auth.Kind{ID: "agrenting_agent_key", Label: "Agrenting agent API key", Provider: "agrenting"}
)

// minKeyLen is the shortest value taken for an agent key: the format is
// unknown, but a shorter string is a typo, not a key.
const minKeyLen = 16

// Config is the Agrenting provider's configuration. Exactly one of APIKey
// and Token is set.
type Config struct {
	APIKey       auth.Secret
	APIKeySource string // "env" or "env_file"
	Token        auth.Secret
	TokenSource  string
	AgentID      string
	APIURL       string // no trailing slash
	RevokePath   string
}

// Kind is what the configured credential is.
func (c Config) Kind() auth.Kind {
	if !c.Token.IsZero() {
		return auth.Classify(c.Token.Reveal())
	}
	return kindAgentKey
}

// LoadConfig reads the provider's variables through get, which returns a
// value and where it came from ("env" or "env_file"). configured is false
// when neither AGRENTING_API_KEY nor AGRENTING_TOKEN is set. Errors name the
// variable and the problem, never the value.
func LoadConfig(get func(name string) (value, source string, ok bool)) (Config, bool, error) {
	val := func(name string) (string, string) {
		v, src, ok := get(name)
		if !ok {
			return "", ""
		}
		return v, src
	}
	key, keySrc := val(EnvAPIKey)
	tok, tokSrc := val(EnvToken)
	if key == "" && tok == "" {
		return Config{}, false, nil
	}
	if key != "" && tok != "" {
		return Config{}, true, fmt.Errorf("set %s (an agent key) or %s (a user token), not both", EnvAPIKey, EnvToken)
	}
	if v, _ := val(envRotatePath); v != "" {
		return Config{}, true, fmt.Errorf("%s is no longer used: keygate rotates its own key with Agrenting's documented POST /api/v1%s; remove the variable", envRotatePath, RotateKeyPath)
	}
	cfg := Config{APIURL: DefaultAPIURL, RevokePath: DefaultRevokePath}
	var err error
	if key != "" {
		err = cfg.setKey(key, keySrc)
	} else {
		err = cfg.setToken(tok, tokSrc)
	}
	if err == nil {
		err = cfg.setOptional(val)
	}
	if err != nil {
		return Config{}, true, err
	}
	return cfg, true, nil
}

// setKey checks and keeps an agent key.
func (cfg *Config) setKey(key, src string) error {
	if err := checkSecret(EnvAPIKey, key); err != nil {
		return err
	}
	switch k := auth.Classify(key); {
	case k.ID == "agrenting_user_token":
		return fmt.Errorf("%s holds an Agrenting user token (ap_); put it in %s, with %s naming the agent", EnvAPIKey, EnvToken, EnvAgentID)
	case k != auth.UnknownKind:
		return fmt.Errorf("%s holds a %s, not an Agrenting agent key", EnvAPIKey, k.Label)
	case len(key) < minKeyLen:
		return fmt.Errorf("%s is too short to be an Agrenting agent key (fewer than %d characters)", EnvAPIKey, minKeyLen)
	}
	cfg.APIKey, cfg.APIKeySource = auth.NewSecret(key), src
	return nil
}

// setToken checks and keeps a user token.
func (cfg *Config) setToken(tok, src string) error {
	if err := checkSecret(EnvToken, tok); err != nil {
		return err
	}
	if k := auth.Classify(tok); k.ID != "agrenting_user_token" {
		what := "not an Agrenting user token"
		if k != auth.UnknownKind {
			what = "a " + k.Label + ", not an Agrenting user token"
		}
		return fmt.Errorf("%s is %s: expected ap_ followed by at least 16 letters, digits, _ or -; an agent key goes in %s", EnvToken, what, EnvAPIKey)
	}
	cfg.Token, cfg.TokenSource = auth.NewSecret(tok), src
	return nil
}

// setOptional reads the agent id (required with a user token), the API
// URL and the revoke path.
func (cfg *Config) setOptional(val func(string) (string, string)) error {
	if v, _ := val(EnvAgentID); v != "" {
		if !idPattern().MatchString(v) {
			return fmt.Errorf("%s must be 1 to 64 letters, digits, _ or - (the agent's id)", EnvAgentID)
		}
		cfg.AgentID = v
	} else if !cfg.Token.IsZero() {
		return fmt.Errorf("%s is set but %s is not: a user token acts as one of the user's agents, sent as X-Agent-ID", EnvToken, EnvAgentID)
	}
	if v, _ := val(EnvAPIURL); v != "" {
		u, err := upstream.CheckBaseURL(EnvAPIURL, v)
		if err != nil {
			return err
		}
		cfg.APIURL = u
	}
	if v, _ := val(EnvRevokePath); v != "" {
		if err := checkPath(EnvRevokePath, v); err != nil {
			return err
		}
		cfg.RevokePath = v
	}
	return nil
}

func checkSecret(name, v string) error {
	if strings.ContainsAny(v, " \t\r\n\x00") {
		return fmt.Errorf("%s contains a space, tab, line break or NUL; copy it again without them", name)
	}
	return nil
}

// checkPath accepts an absolute path of plain segments whose placeholders
// are :agent_id and :id.
func checkPath(name, v string) error {
	if !pathPattern().MatchString(v) || strings.Contains(v, "..") {
		return fmt.Errorf("%s must be a path such as %s: segments of letters, digits, _ . - and the placeholders :agent_id and :id", name, DefaultRevokePath)
	}
	for _, ph := range placeholderInfo().FindAllString(v, -1) {
		if ph != ":agent_id" && ph != ":id" {
			return fmt.Errorf("%s has the unknown placeholder %s; use :agent_id and :id", name, ph)
		}
	}
	return nil
}

// expandPath fills :agent_id and :id, escaped for a path segment.
func expandPath(p, agentID, id string) string {
	p = strings.ReplaceAll(p, ":agent_id", url.PathEscape(agentID))
	return strings.ReplaceAll(p, ":id", url.PathEscape(id))
}
