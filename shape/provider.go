package shape

import "github.com/keygate/keygate/provider"

// SanitizeDescription copies d with every string sanitised: the strings
// text renderings show on a line are kept on it (OneLine); Details, shown
// only as JSON, keep their line breaks. The provider's own slices and maps
// are left untouched (it may cache them).
func SanitizeDescription(d provider.Description) provider.Description {
	d.Provider, d.Owner, d.RotateHint = OneLine(d.Provider), OneLine(d.Owner), OneLine(d.RotateHint)
	if d.Details != nil {
		d.Details, _ = SanitizedCopy(d.Details).(map[string]any)
	}
	if d.Credentials != nil {
		creds := make([]provider.Credential, len(d.Credentials))
		for i, c := range d.Credentials {
			c.Name, c.Kind, c.Label, c.Masked = OneLine(c.Name), OneLine(c.Kind), OneLine(c.Label), OneLine(c.Masked)
			c.Source, c.Verified, c.Detail = OneLine(c.Source), OneLine(c.Verified), OneLine(c.Detail)
			c.Grants = OneLines(c.Grants)
			creds[i] = c
		}
		d.Credentials = creds
	}
	d.Problems = OneLines(d.Problems)
	return d
}

// SanitizedCopy is a sanitised copy of a value that encodes as JSON: the
// value json.Marshal then DecodeSanitized give, which encodes the same
// way. Nil when v cannot be encoded.
func SanitizedCopy(v any) any {
	b, err := Marshal(v)
	if err != nil {
		return nil
	}
	out, _ := DecodeSanitized(b)
	return out
}

func OneLines(ss []string) []string {
	if ss == nil {
		return nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = OneLine(s)
	}
	return out
}

// SanitizeKey is a key's identifiers and name on one line, sanitised.
func SanitizeKey(k provider.Key) provider.Key {
	k.ID, k.Name, k.Masked = OneLine(k.ID), OneLine(k.Name), OneLine(k.Masked)
	k.CreatedBy, k.RotatedTo = OneLine(k.CreatedBy), OneLine(k.RotatedTo)
	k.Scopes = OneLines(k.Scopes)
	return k
}

// SanitizeAccess copies a provider's access answers with their words on
// one line, sanitised.
func SanitizeAccess(access []provider.Access) []provider.Access {
	if access == nil {
		return nil
	}
	out := make([]provider.Access, len(access))
	for i, a := range access {
		a.Operation, a.Reason, a.Fix = OneLine(a.Operation), OneLine(a.Reason), OneLine(a.Fix)
		out[i] = a
	}
	return out
}
