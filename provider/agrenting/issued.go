package agrenting

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/keygate/keygate/auth"
)

// This file finds keys where Agrenting's answers do not say where they
// are, and names keys where Agrenting gives them no name keygate can learn.
// docs/providers/agrenting.md, "Keys", has the facts and the unknowns:
// the answers of POST /auth/rotate-key and POST /agents/:id/credentials are
// not documented, nor is the format of an agent key, nor any field that
// would tell which listed key is the one a caller holds.

// keyID names an agent key by its secret: Agrenting documents no way to
// learn the id of the key a caller holds, so keygate uses the first 16 hex
// digits of the secret's SHA-256, which identify the key without revealing
// it. The same secret always gets the same name, in any process.
func keyID(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return keyIDPrefix + hex.EncodeToString(sum[:8])
}

const keyIDPrefix = "sha256-"

// isKeyID reports whether id is a name keyID made.
func isKeyID(id string) bool {
	rest, ok := strings.CutPrefix(id, keyIDPrefix)
	if !ok || len(rest) != 16 {
		return false
	}
	_, err := hex.DecodeString(rest)
	return err == nil
}

// maxKnown bounds the agent keys the client remembers by keyID: the ones a
// rotation or a create issued and the ones it verified lately.
const maxKnown = 8

// remember keeps secret so that a key named by keyID can be acted on
// later in this process (Discard, the undo of a create).
func (c *Client) remember(secret auth.Secret) {
	if secret.IsZero() {
		return
	}
	c.redact.Add(secret.Reveal())
	c.mu.Lock()
	defer c.mu.Unlock()
	c.known = slices.DeleteFunc(c.known, func(s auth.Secret) bool { return s.Reveal() == secret.Reveal() })
	c.known = append(c.known, secret)
	if len(c.known) > maxKnown {
		c.known = c.known[len(c.known)-maxKnown:]
	}
}

// knownSecret is the secret of key id, if the client met it.
func (c *Client) knownSecret(id string) (auth.Secret, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.known {
		if keyID(s.Reveal()) == id {
			return s, true
		}
	}
	return auth.Secret{}, false
}

// found is a key found in an answer.
type found struct {
	secret string
	// id is the platform's id for the key when the answer puts one beside
	// it (a sibling "id", "key_id" or "credential_id", or "credential.id").
	id   string
	name string
}

// Names of members that hold a new key, best first. Member names are
// compared in lower case without '_' and '-'. Tier 1 is the documented
// name: the register answer hands out an agent key as "api_key"
// (docs/providers/agrenting.md, "Keys"). A session token ("token") is
// never taken for a key: using one as X-API-Key would fail, and a wrong
// pick after the old key died would cost the new one.
var keyNames = []map[string]bool{
	{"apikey": true, "newapikey": true, "agentapikey": true},
	{"key": true, "newkey": true, "secret": true, "secretkey": true, "plaintext": true, "plaintextkey": true, "fullkey": true, "rawkey": true, "value": false},
}

// notKeyNames are members whose values are never taken for a key by the
// fallback, whatever they look like.
var notKeyNames = []string{"id", "name", "status", "message", "type", "url", "prefix", "last", "hash", "masked", "hint", "token", "did", "at", "description"}

var (
	uuidShape = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	})
	timeShape = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}`) })
	// tokenShape is what the fallback takes for a key: one run of the
	// characters API keys are made of, with a letter and a digit.
	tokenShape = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_.+/=-]{20,512}$`) })
)

// maxKeyLen is the longest value taken for a key.
const maxKeyLen = 512

// looksLikeKey: a value a member named like a key may hold. The format of
// an agent key is unknown, so this excludes only what a key cannot be:
// short (under minKeyLen), long, spaced, masked, a UUID, a time or a URL.
func looksLikeKey(v string) bool {
	if len(v) < minKeyLen || len(v) > maxKeyLen || uuidShape().MatchString(v) || timeShape().MatchString(v) || strings.Contains(v, "://") {
		return false
	}
	for _, r := range v {
		if r <= ' ' || r > '~' || r == '*' {
			return false
		}
	}
	return !strings.Contains(v, "...")
}

// looksLikeKeyLoose: a value the fallback takes for a key under a member
// whose name says nothing.
func looksLikeKeyLoose(v string) bool {
	return looksLikeKey(v) && tokenShape().MatchString(v) && strings.ContainsAny(v, "0123456789") &&
		strings.ContainsAny(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
}

func normName(k string) string {
	return strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(k))
}

// tierOf is the rank of member name k (0: not a key's name). "value" is a
// key's name only under a member named like a key ({"new_key":{"value"}}).
func tierOf(k string, parentTier int) int {
	n := normName(k)
	for i, names := range keyNames {
		if isKey, ok := names[n]; ok {
			if isKey {
				return i + 1
			}
			return parentTier
		}
	}
	return 0
}

func notKeyName(k string) bool {
	n := strings.ToLower(k)
	for _, w := range notKeyNames {
		if n == w || strings.HasSuffix(n, "_"+w) || strings.HasPrefix(n, w+"_") {
			return true
		}
	}
	return false
}

type candidate struct {
	path   string
	value  string
	tier   int // 1 and 2: named; len(keyNames)+1: the fallback
	parent map[string]any
}

// maxVisit bounds the walk over an answer.
const maxVisit = 10000

// findIssued finds the new key in an answer of POST /auth/rotate-key or
// POST /agents/:id/credentials, whatever its shape: the answer's data
// (the official client reads "envelope.data ?? envelope"), or the answer
// itself when it has none, or a bare key. The key is the value of the
// best-named member (api_key first, then key, new_key, secret, or a
// "value" under one of those), at any depth; failing that, the one value
// anywhere shaped like a key (20 or more letters, digits and _.+/=-, with a
// letter and a digit) under a member whose name does not say it is
// something else (an id, a name, a time, a prefix, a token...). Values in
// exclude (the old key) are never taken. Two different candidates of the
// same rank are refused rather than guessed between: a wrong pick after
// the old key died would cost the new one. The error names the members it
// saw, never a value.
func findIssued(raw []byte, exclude ...string) (found, error) {
	doc, bare, err := issuedDoc(raw, exclude)
	if err != nil || bare != "" {
		return found{secret: bare}, err
	}
	w := keyWalk{exclude: exclude}
	w.walk(doc, "data", 0, nil)
	return w.pick()
}

// issuedDoc reads an answer: the document to walk (its data, or itself
// when it has none), or a bare key (the body, or a string data).
func issuedDoc(raw []byte, exclude []string) (doc any, bare string, err error) {
	body := bytes.TrimSpace(raw)
	if len(body) == 0 {
		return nil, "", errors.New("the answer is empty")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		if s := string(body); looksLikeKeyLoose(s) && !slices.Contains(exclude, s) {
			return nil, s, nil
		}
		return nil, "", errors.New("the answer is neither JSON nor a key")
	}
	if m, ok := doc.(map[string]any); ok && m["data"] != nil {
		doc = m["data"]
	}
	if s, ok := doc.(string); ok {
		if looksLikeKey(s) && !slices.Contains(exclude, s) {
			return nil, s, nil
		}
		return nil, "", errors.New("the answer's data is a string that is not shaped like a key")
	}
	return doc, "", nil
}

// keyWalk collects the values of an answer that may be the key.
type keyWalk struct {
	exclude []string
	cands   []candidate
	seen    []string // the paths of the string members, for errors
	visits  int
}

// walk visits v at path; parentTier is the rank of the member holding it.
func (w *keyWalk) walk(v any, path string, parentTier int, parent map[string]any) {
	if w.visits++; w.visits > maxVisit {
		return
	}
	switch x := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			p := path + "." + k
			t := tierOf(k, parentTier)
			if val, ok := x[k].(string); ok {
				w.member(k, p, val, t, x)
			} else {
				w.walk(x[k], p, t, x)
			}
		}
	case []any:
		for i, item := range x {
			w.walk(item, fmt.Sprintf("%s[%d]", path, i), parentTier, parent)
		}
	}
}

// member considers the string val of member k (rank t) of parent.
func (w *keyWalk) member(k, path, val string, t int, parent map[string]any) {
	w.seen = append(w.seen, path)
	switch {
	case slices.Contains(w.exclude, val):
	case t > 0 && looksLikeKey(val):
		w.cands = append(w.cands, candidate{path, val, t, parent})
	case t == 0 && !notKeyName(k) && looksLikeKeyLoose(val):
		w.cands = append(w.cands, candidate{path, val, len(keyNames) + 1, parent})
	}
}

// pick is the one candidate of the best rank; two different values of
// that rank are refused, not guessed between.
func (w *keyWalk) pick() (found, error) {
	if len(w.cands) == 0 {
		seen := w.seen
		if len(seen) > 12 {
			seen = append(seen[:12], "…")
		}
		return found{}, fmt.Errorf("no member of the answer holds a key (members: %s)", strings.Join(seen, ", "))
	}
	best := slices.MinFunc(w.cands, func(a, b candidate) int { return a.tier - b.tier }).tier
	var pick *candidate
	var paths []string
	for i, cd := range w.cands {
		if cd.tier != best {
			continue
		}
		paths = append(paths, cd.path)
		if pick != nil && pick.value != cd.value {
			return found{}, fmt.Errorf("the answer holds more than one value that may be the key (%s); keygate does not guess between them", strings.Join(paths, ", "))
		}
		pick = &w.cands[i]
	}
	f := found{secret: pick.value}
	f.id, f.name = siblingID(pick.parent)
	return f, nil
}

// siblingID reads the platform's id and name for a key from the object
// holding it: "credential_id", "key_id" or "id" beside it, or the "id" of
// a "credential" object beside it. An agent's id ("agent": {"id"}) is not
// the key's.
func siblingID(parent map[string]any) (id, name string) {
	if parent == nil {
		return "", ""
	}
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	for _, k := range []string{"credential_id", "key_id", "id"} {
		if id = str(parent, k); id != "" {
			break
		}
	}
	name = str(parent, "name")
	if cred, ok := parent["credential"].(map[string]any); ok {
		if id == "" {
			id = str(cred, "id")
		}
		if name == "" {
			name = str(cred, "name")
		}
	}
	if !idPattern().MatchString(id) {
		id = ""
	}
	return id, name
}

// showsSecret reports whether a listed credential shows a part of secret
// that identifies it. Field names are not documented, so it looks at every
// string value, not at names: the secret's last 4 to 8 characters, its
// first 8 to 16, or a masked form ("agr_1a2b…9f0e", "****9f0e") whose
// visible start and end are the secret's, with at least 4 characters of its
// end or 8 of its start showing.
func showsSecret(entry map[string]any, secret string) bool {
	if secret == "" {
		return false
	}
	for _, v := range entry {
		s, ok := v.(string)
		if !ok || s == "" || s == secret {
			continue
		}
		if pre, post, masked := cutMask(s); masked {
			if (len(post) >= 4 || (post == "" && len(pre) >= 8)) && strings.HasPrefix(secret, pre) && strings.HasSuffix(secret, post) {
				return true
			}
			continue
		}
		if len(s) < len(secret) && ((len(s) >= 4 && len(s) <= 8 && strings.HasSuffix(secret, s)) ||
			(len(s) >= 8 && len(s) <= 16 && strings.HasPrefix(secret, s))) {
			return true
		}
	}
	return false
}

// cutMask splits a masked key into what shows before and after its mask
// (…, ..., or a run of * or •).
func cutMask(s string) (pre, post string, ok bool) {
	i := strings.IndexAny(s, "…*•")
	if j := strings.Index(s, "..."); j >= 0 && (i < 0 || j < i) {
		i = j
	}
	if i < 0 {
		return s, "", false
	}
	rest := strings.TrimLeft(s[i:], "…*•.")
	return s[:i], rest, true
}
