package tools

import (
	"context"

	"github.com/keygate/keygate/credentials"
	"github.com/keygate/keygate/provider"
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
	return sanitizeDescription(d), err
}

func (s sanitizedInspector) CheckAccess(ctx context.Context, ops []provider.Operation) ([]provider.Access, error) {
	access, err := s.Inspector.CheckAccess(ctx, ops)
	if access == nil {
		return nil, err
	}
	out := make([]provider.Access, len(access))
	for i, a := range access {
		a.Operation, a.Reason, a.Fix = oneLine(a.Operation), oneLine(a.Reason), oneLine(a.Fix)
		out[i] = a
	}
	return out, err
}

// sanitizeDescription copies d with every string sanitised: the strings
// text renderings show on a line are kept on it (oneLine); Details, shown
// only as JSON, keep their line breaks. The provider's own slices and maps
// are left untouched (it may cache them).
func sanitizeDescription(d provider.Description) provider.Description {
	d.Provider, d.Owner, d.RotateHint = oneLine(d.Provider), oneLine(d.Owner), oneLine(d.RotateHint)
	if d.Details != nil {
		d.Details, _ = sanitizedCopy(d.Details).(map[string]any)
	}
	if d.Credentials != nil {
		creds := make([]provider.Credential, len(d.Credentials))
		for i, c := range d.Credentials {
			c.Name, c.Kind, c.Label, c.Masked = oneLine(c.Name), oneLine(c.Kind), oneLine(c.Label), oneLine(c.Masked)
			c.Source, c.Verified, c.Detail = oneLine(c.Source), oneLine(c.Verified), oneLine(c.Detail)
			c.Grants = oneLines(c.Grants)
			creds[i] = c
		}
		d.Credentials = creds
	}
	d.Problems = oneLines(d.Problems)
	return d
}

// sanitizedCopy is a sanitised copy of a value that encodes as JSON: the
// value json.Marshal then decodeSanitized give, which encodes the same
// way. Nil when v cannot be encoded.
func sanitizedCopy(v any) any {
	b, err := marshalValue(v)
	if err != nil {
		return nil
	}
	out, _ := decodeSanitized(b)
	return out
}

func oneLines(ss []string) []string {
	if ss == nil {
		return nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = oneLine(s)
	}
	return out
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
		out[i] = sanitizeKey(k)
	}
	return out, err
}

func (s sanitizedKeys) CreateKey(ctx context.Context, name string) (provider.IssuedKey, error) {
	ik, err := s.RemoteKeys.CreateKey(ctx, name)
	ik.Key = sanitizeKey(ik.Key)
	return ik, err
}

func (s sanitizedKeys) RevokeKey(ctx context.Context, id string) (provider.Key, bool, error) {
	k, already, err := s.RemoteKeys.RevokeKey(ctx, id)
	return sanitizeKey(k), already, err
}

// sanitizeKey is a key's identifiers and name on one line, sanitised.
func sanitizeKey(k provider.Key) provider.Key {
	k.ID, k.Name, k.Masked = oneLine(k.ID), oneLine(k.Name), oneLine(k.Masked)
	k.CreatedBy, k.RotatedTo = oneLine(k.CreatedBy), oneLine(k.RotatedTo)
	k.Scopes = oneLines(k.Scopes)
	return k
}
