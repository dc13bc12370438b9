package provider

// MergePatch applies an RFC 7396 JSON merge patch to target, both decoded
// JSON values (map[string]any for objects): a patch object is merged key
// by key into the target object, a null removes its key, and anything
// else replaces the target whole. It is how Patch.Fields changes an
// object's fields; neither argument is modified.
func MergePatch(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, _ := target.(map[string]any)
	out := make(map[string]any, len(tm)+len(pm))
	for k, v := range tm {
		out[k] = v
	}
	for k, v := range pm {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = MergePatch(out[k], v)
	}
	return out
}
