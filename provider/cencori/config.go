package cencori

import (
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider/upstream"
)

// The variables the provider reads.
const (
	// EnvAPIKey holds the Cencori key. Its prefix says what it is: csk_
	// secret, cpk_ publishable, _test variants, cake_ agent-scoped.
	EnvAPIKey = "CENCORI_API_KEY"
	// EnvAPIURL overrides the REST host, under which keygate calls
	// /v1/metrics and /v1/memory/*. For a self-hosted Cencori app, whose
	// routes live under /api/v1, set it to https://host/api.
	EnvAPIURL = "CENCORI_API_URL"
	// EnvGatewayURL overrides the native gateway host (/api/ai/*). keygate's
	// tools make no AI calls today; the setting is validated and reported so
	// one configuration points at a deployment (or the fake) as a whole.
	EnvGatewayURL = "CENCORI_GATEWAY_URL"
	// EnvMemoryUserID is the userId memories are kept under: Cencori's
	// memory API needs a userId or sessionId on every list, search and
	// write. Default DefaultMemoryUserID; a filter or a create's
	// fields.userId / fields.sessionId overrides it per call.
	EnvMemoryUserID = "CENCORI_MEMORY_USER_ID"
	// EnvMemoryNamespace is the namespace memories are written to and
	// listed from; empty means Cencori's default namespace on writes and
	// every namespace on lists.
	EnvMemoryNamespace = "CENCORI_MEMORY_NAMESPACE"
)

// Defaults.
const (
	DefaultAPIURL       = "https://api.cencori.com"
	DefaultGatewayURL   = "https://cencori.com"
	DefaultMemoryUserID = "keygate"
)

// Key types, from the key's prefix.
const (
	KeyTypeSecret      = "secret"
	KeyTypePublishable = "publishable"
	KeyTypeAgent       = "agent"
	KeyTypeLegacy      = "legacy"
)

// Environments, from the key's prefix.
const (
	EnvironmentLive    = "live"
	EnvironmentTest    = "test"
	EnvironmentUnknown = "unknown"
)

// Older key formats Cencori's validateApiKey still accepts, which
// auth.Classify does not know: they carry no type or environment.
var (
	legacyBase58  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^cen_[1-9A-HJ-NP-Za-km-z]{32}$`) })
	legacyGeneric = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^cencori_[A-Za-z0-9._-]{16,}$`) })
	kindLegacy    = auth.Kind{ID: "cencori_legacy_key", Label: "Cencori legacy key", Provider: "cencori", Prefix: "cen_"}
	kindGeneric   = auth.Kind{ID: "cencori_key", Label: "Cencori key", Provider: "cencori", Prefix: "cencori_"}
)

var scopeKeyPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9._:@-]{1,128}$`) })

// Config is the Cencori provider's configuration.
type Config struct {
	APIKey       auth.Secret
	APIKeySource string    // "env" or "env_file"
	Kind         auth.Kind // what the key's shape says it is
	APIURL       string    // REST host, no trailing slash
	GatewayURL   string    // native gateway host, no trailing slash
	// MemoryUserID and MemoryNamespace are the defaults for memory calls.
	MemoryUserID    string
	MemoryNamespace string
}

// KeyType is secret, publishable, agent or legacy.
func (c Config) KeyType() string { return keyType(c.Kind) }

// Environment is live, test or unknown (legacy formats).
func (c Config) Environment() string {
	switch {
	case strings.HasSuffix(c.Kind.ID, "_test"):
		return EnvironmentTest
	case c.Kind.ID == kindLegacy.ID || c.Kind.ID == kindGeneric.ID:
		return EnvironmentUnknown
	}
	return EnvironmentLive
}

func keyType(k auth.Kind) string {
	switch k.ID {
	case "cencori_secret", "cencori_secret_test":
		return KeyTypeSecret
	case "cencori_publishable", "cencori_publishable_test":
		return KeyTypePublishable
	case "cencori_agent_key":
		return KeyTypeAgent
	}
	return KeyTypeLegacy
}

// LoadConfig reads the provider's variables through get, which returns a
// value and where it came from ("env" or "env_file"). configured is false
// when CENCORI_API_KEY is unset or empty. Errors name the variable and the
// problem, never the value.
func LoadConfig(get func(name string) (value, source string, ok bool)) (Config, bool, error) {
	key, src, ok := get(EnvAPIKey)
	if !ok || key == "" {
		return Config{}, false, nil
	}
	kind, err := classifyKey(key)
	if err != nil {
		return Config{}, true, err
	}
	cfg := Config{APIKey: auth.NewSecret(key), APIKeySource: src, Kind: kind,
		APIURL: DefaultAPIURL, GatewayURL: DefaultGatewayURL, MemoryUserID: DefaultMemoryUserID}
	for _, u := range []struct {
		name string
		dst  *string
	}{{EnvAPIURL, &cfg.APIURL}, {EnvGatewayURL, &cfg.GatewayURL}} {
		v, _, ok := get(u.name)
		if !ok || v == "" {
			continue
		}
		norm, err := upstream.CheckBaseURL(u.name, v)
		if err != nil {
			return Config{}, true, err
		}
		*u.dst = norm
	}
	if v, _, ok := get(EnvMemoryUserID); ok && v != "" {
		if !scopeKeyPattern().MatchString(v) {
			return Config{}, true, fmt.Errorf("%s must be 1 to 128 letters, digits or . _ : @ -", EnvMemoryUserID)
		}
		cfg.MemoryUserID = v
	}
	if v, _, ok := get(EnvMemoryNamespace); ok && v != "" {
		if !scopeKeyPattern().MatchString(v) {
			return Config{}, true, fmt.Errorf("%s must be 1 to 128 letters, digits or . _ : @ -", EnvMemoryNamespace)
		}
		cfg.MemoryNamespace = v
	}
	return cfg, true, nil
}

// classifyKey accepts the formats Cencori issues (docs/providers/cencori.md,
// "Keys"): validateApiKey's, plus the 32-hex cake_ keys of the dashboard's
// agent setup. A malformed key fails at start-up instead of as a 401 later.
func classifyKey(key string) (auth.Kind, error) {
	if strings.ContainsAny(key, " \t\r\n\x00") {
		return auth.Kind{}, fmt.Errorf("%s contains a space, tab, line break or NUL; copy the key again without them", EnvAPIKey)
	}
	kind := auth.Classify(key)
	switch {
	case kind.Provider == "cencori":
		return kind, nil
	case legacyBase58().MatchString(key):
		return kindLegacy, nil
	case legacyGeneric().MatchString(key):
		return kindGeneric, nil
	case kind != auth.UnknownKind:
		return auth.Kind{}, fmt.Errorf("%s holds a %s, not a Cencori key; put it in that provider's variable and use a Cencori key (csk_...) here", EnvAPIKey, kind.Label)
	}
	if strings.HasPrefix(key, "cake_") {
		return auth.Kind{}, fmt.Errorf("%s starts with cake_ but is malformed: Cencori agent keys are cake_ followed by 32 or 48 lower-case hex characters (the dashboard's agent setup issues 32)", EnvAPIKey)
	}
	for _, p := range []string{"csk_test_", "cpk_test_", "csk_", "cpk_"} {
		if strings.HasPrefix(key, p) {
			return auth.Kind{}, fmt.Errorf("%s starts with %s but is malformed: Cencori keys are the prefix followed by exactly 48 lower-case hex characters", EnvAPIKey, p)
		}
	}
	return auth.Kind{}, fmt.Errorf("%s is not a Cencori key: expected csk_ (secret), cpk_ (publishable) or csk_test_/cpk_test_ followed by 48 lower-case hex characters, or cake_ (agent) followed by 32 or 48", EnvAPIKey)
}
