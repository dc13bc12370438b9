package tools

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
)

// ContentStore is what the content tools need from a provider.
type ContentStore interface {
	Types(ctx context.Context) ([]provider.ContentType, error)
	List(ctx context.Context, q provider.ListQuery) (provider.Page, error)
	Get(ctx context.Context, typ string, ref provider.Ref) (provider.Object, error)
	Create(ctx context.Context, n provider.NewObject) (provider.Object, error)
	Update(ctx context.Context, p provider.Patch) (provider.Object, error)
	Delete(ctx context.Context, typ, id string) (provider.Object, error)
}

// KeyManager is what the credential tools need from a provider that issues
// and revokes keys itself.
type KeyManager interface {
	CreateKey(ctx context.Context, actor *auth.Principal, nk provider.NewKey) (provider.IssuedKey, error)
	ListKeys(ctx context.Context) ([]provider.Key, error)
	GetKey(ctx context.Context, id string) (provider.Key, error)
	// RotateKey issues the successor of key id. A negative grace leaves the
	// old key untouched, so the caller can store the new one first and
	// retire the old one after (RetireKey).
	RotateKey(ctx context.Context, actor *auth.Principal, id string, grace time.Duration) (provider.IssuedKey, provider.Key, error)
	RetireKey(ctx context.Context, id string, grace time.Duration) (provider.Key, error)
	RevokeKey(ctx context.Context, actor *auth.Principal, id string) (provider.Key, bool, error)
}

// Inspector is what the auth tools need from a remote provider, whose
// credentials keygate holds but does not issue.
type Inspector interface {
	// Describe checks the configured credentials live where the API
	// allows it, and says who they belong to and what they grant.
	Describe(ctx context.Context) (provider.Description, error)
	// CheckAccess answers, for each operation, whether the configured
	// credentials allow it, established with requests that change nothing.
	// Where that is impossible the answer is Known: false, Allowed: false.
	CheckAccess(ctx context.Context, ops []auth.Scope) ([]provider.Access, error)
}

// RemoteKeyManager is what the credential tools need from a remote API
// that issues and revokes its own keys.
type RemoteKeyManager interface {
	ListKeys(ctx context.Context) ([]provider.Key, error)
	CreateKey(ctx context.Context, name string) (provider.IssuedKey, error)
	// RotateKey replaces key id. The platform revokes the old key at once,
	// so the caller must store the returned secret before anything else.
	RotateKey(ctx context.Context, id string) (provider.IssuedKey, error)
	// RevokeKey revokes key id; already reports that it was revoked
	// before, and nothing changed.
	RevokeKey(ctx context.Context, id string) (k provider.Key, already bool, err error)
}

// Provider is one configured back end.
type Provider struct {
	Name    string
	Content ContentStore
	Keys    KeyManager // keygate's own keys (local); nil elsewhere
	// Inspect is set for remote providers.
	Inspect Inspector
	// RemoteKeys is set for remote providers with a key-management API.
	RemoteKeys RemoteKeyManager
	// RotateHint tells a person how to rotate this provider's keys by
	// hand, for providers without a key-management API.
	RotateHint string
}

// Providers holds the configured back ends; the first is the default. A
// reload may replace them while calls run: each call works with the
// provider it picked.
type Providers struct {
	mu   sync.RWMutex
	list []Provider
}

// NewProviders returns a registry; ps must not be empty. What the
// providers say about themselves is sanitised on its way out
// (guardProvider).
func NewProviders(ps ...Provider) *Providers { return &Providers{list: guardProviders(ps)} }

// Set replaces the registry's providers; ps must not be empty.
func (p *Providers) Set(ps ...Provider) {
	ps = guardProviders(ps)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.list = ps
}

func guardProviders(ps []Provider) []Provider {
	out := make([]Provider, len(ps))
	for i, pr := range ps {
		out[i] = guardProvider(pr)
	}
	return out
}

func (p *Providers) all() []Provider {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.list
}

// Remote returns the configured remote providers, in order.
func (p *Providers) Remote() []Provider {
	var out []Provider
	for _, pr := range p.all() {
		if pr.Inspect != nil {
			out = append(out, pr)
		}
	}
	return out
}

// Names lists the configured providers.
func (p *Providers) Names() []string {
	list := p.all()
	out := make([]string, len(list))
	for i, pr := range list {
		out[i] = pr.Name
	}
	return out
}

// Pick returns the provider named by the optional "provider" argument, or
// an isError result naming the field and the choices.
func (p *Providers) Pick(name string) (Provider, *mcp.CallToolResult) {
	list := p.all()
	if name == "" {
		return list[0], nil
	}
	for _, pr := range list {
		if pr.Name == name {
			return pr, nil
		}
	}
	return Provider{}, errorResult("provider", fmt.Sprintf("provider %q is not configured", name),
		fmt.Sprintf("use one of: %s (or leave provider out for %s)", strings.Join(p.Names(), ", "), list[0].Name))
}

// providerArg is the schema of the optional provider argument every tool takes.
func providerArg() mcp.ToolOption {
	return mcp.WithString("provider",
		mcp.Description("Which configured back end to use (default: the first configured, normally \"local\"). auth_whoami lists them."),
		mcp.Pattern(`^[a-z][a-z0-9_-]{0,31}$`))
}
