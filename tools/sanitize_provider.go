package tools

import (
	"context"

	"github.com/keygate/keygate/credentials"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/shape"
)

// guardProvider routes what a remote provider says about itself (its
// description, access answers and keys) through the sanitiser, so every
// tool that shows it, whichever handler renders it, shows it sanitised and
// with identifiers on one line. Content objects are sanitised where they
// are decoded (project, wholeObject), content types by content_types.
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
