package tools

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/keygate/keygate/credentials"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/shape"
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

// Inspector is what the auth tools need from a remote provider, whose
// credentials keygate holds but does not issue.
type Inspector interface {
	// Describe checks the configured credentials live where the API
	// allows it, and says who they belong to and what they grant.
	Describe(ctx context.Context) (provider.Description, error)
	// CheckAccess answers, for each operation, whether the configured
	// credentials allow it, established with requests that change nothing.
	// Where that is impossible the answer is Known: false, Allowed: false.
	CheckAccess(ctx context.Context, ops []provider.Operation) ([]provider.Access, error)
}

// Provider is one configured back end.
type Provider struct {
	Name    string
	Content ContentStore
	// Inspect is set for remote providers.
	Inspect Inspector
	// Ring is the provider's keys, as the credentials service manages
	// them.
	Ring credentials.Ring
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
	return Provider{}, shape.Error("provider", fmt.Sprintf("provider %q is not configured", name),
		fmt.Sprintf("use one of: %s (or leave provider out for %s)", strings.Join(p.Names(), ", "), list[0].Name))
}

// guardProvider routes what a remote provider says about itself (its
// description, access answers and keys) through the sanitiser, so every
// tool that shows it, whichever handler renders it, shows it sanitised and
// with identifiers on one line. Content objects are sanitised where they
// are decoded (shape.Project, shape.WholeObject), content types by
// content_types.
func guardProvider(p Provider) Provider {
	if p.Inspect != nil {
		if _, done := p.Inspect.(sanitizedInspector); !done {
			p.Inspect = sanitizedInspector{p.Inspect}
		}
	}
	if p.Ring.Remote != nil {
		if _, done := p.Ring.Remote.(sanitizedKeys); !done {
			p.Ring.Remote = sanitizedKeys{p.Ring.Remote}
		}
	}
	return p
}

// sanitizedInspector is an Inspector whose answers are sanitised.
type sanitizedInspector struct{ Inspector }

func (s sanitizedInspector) Describe(ctx context.Context) (provider.Description, error) {
	d, err := s.Inspector.Describe(ctx)
	return shape.SanitizeDescription(d), err
}

func (s sanitizedInspector) CheckAccess(ctx context.Context, ops []provider.Operation) ([]provider.Access, error) {
	access, err := s.Inspector.CheckAccess(ctx, ops)
	return shape.SanitizeAccess(access), err
}

// sanitizedKeys is a provider's key API whose keys are shown sanitised.
// The secret of an issued key is passed on untouched.
type sanitizedKeys struct{ credentials.RemoteKeys }

func (s sanitizedKeys) ListKeys(ctx context.Context) ([]provider.Key, error) {
	keys, err := s.RemoteKeys.ListKeys(ctx)
	if keys == nil {
		return nil, err
	}
	out := make([]provider.Key, len(keys))
	for i, k := range keys {
		out[i] = shape.SanitizeKey(k)
	}
	return out, err
}

func (s sanitizedKeys) CreateKey(ctx context.Context, name string) (provider.IssuedKey, error) {
	ik, err := s.RemoteKeys.CreateKey(ctx, name)
	ik.Key = shape.SanitizeKey(ik.Key)
	return ik, err
}

func (s sanitizedKeys) RevokeKey(ctx context.Context, id string) (provider.Key, bool, error) {
	k, already, err := s.RemoteKeys.RevokeKey(ctx, id)
	return shape.SanitizeKey(k), already, err
}
