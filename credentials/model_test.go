package credentials_test

// A model-based test of the key operations (issue 12): random sequences of
// create, rotate, revoke, list, authenticate-and-act and hostile deliveries,
// by random principals, against the real service, store, rotation engine and
// deliveries, each checked against a small reference model of the policy
// written independently of package policy. Every step's outcome must match
// the model; after every step no key works that the model says is dead, no
// caller wrote keygate's own files, and no secret appeared in any error.
//
// KEYGATE_MODEL_SEED replays one seed; KEYGATE_MODEL_STEPS sets the steps
// per seed. The fast tier runs two seeds of 300 steps; the slow tier
// (-tags slow) 20 seeds of 500: 10,000 steps.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/credentials"
	"github.com/keygate/keygate/delivery"
	"github.com/keygate/keygate/internal/testtier"
	"github.com/keygate/keygate/policy"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/local"
	"github.com/keygate/keygate/rotation"
)

// mkey is the model's view of one key.
type mkey struct {
	id, secret string
	scopes     auth.Scopes
	expires    time.Time
	parent     string // who owns it now (moves to a successor on rotation)
	rotatedTo  string
	revoked    bool
}

type model struct {
	keys  map[string]*mkey
	order []string // creation order, for deterministic choices
	now   time.Time
}

func (m *model) alive(id string) bool {
	k := m.keys[id]
	return k != nil && !k.revoked && m.now.Before(k.expires)
}

func (m *model) chain(id string, next func(*mkey) string) []string {
	var out []string
	for cur := id; ; {
		k := m.keys[cur]
		if k == nil || next(k) == "" || slices.Contains(out, next(k)) || next(k) == id {
			return out
		}
		cur = next(k)
		out = append(out, cur)
	}
}

// owns is the rule of docs/SECURITY.md: the key itself, a later version of
// it, or a key that created it, transitively.
func (m *model) owns(actor, id string) bool {
	return actor == id || slices.Contains(m.chain(id, func(k *mkey) string { return k.parent }), actor) ||
		slices.Contains(m.chain(id, func(k *mkey) string { return k.rotatedTo }), actor)
}

// superseded: the key was rotated; it is an earlier version for good.
func (m *model) superseded(id string) bool { return m.keys[id].rotatedTo != "" }

// liveBelow counts the live keys id created, transitively.
func (m *model) liveBelow(id string) int {
	n := 0
	for _, k := range m.keys {
		if m.alive(k.id) && slices.Contains(m.chain(k.id, func(k *mkey) string { return k.parent }), id) {
			n++
		}
	}
	return n
}

// treeFull reports whether a key created by actor would give a non-admin
// key above it more than the allowed live keys below it.
func (m *model) treeFull(actor string) bool {
	for id := actor; id != ""; id = m.keys[id].parent {
		if isAdmin(m.keys[id].scopes) {
			return false
		}
		if m.liveBelow(id) >= policy.MaxLiveDescendants {
			return true
		}
	}
	return false
}

func has(s auth.Scopes, a auth.Action) bool {
	for _, sc := range s {
		if sc.Action == auth.Admin || sc.Action == a {
			return true
		}
	}
	return false
}

func isAdmin(s auth.Scopes) bool {
	return slices.ContainsFunc(s, func(x auth.Scope) bool { return x.Action == auth.Admin })
}

func covers(have, want auth.Scopes) bool {
	for _, w := range want {
		if !slices.ContainsFunc(have, func(h auth.Scope) bool {
			return h.Action == auth.Admin || (h.Action == w.Action && (h.Type == "" || h.Type == w.Type))
		}) {
			return false
		}
	}
	return true
}

// mayCreate, mayChange and mayList are the policy, as the model states it.
func (m *model) mayCreate(actor string, scopes auth.Scopes, expires time.Time) bool {
	if actor == "" {
		return true // the operator
	}
	a := m.keys[actor]
	return has(a.scopes, auth.CredentialsWrite) && !m.superseded(actor) && !m.treeFull(actor) &&
		covers(a.scopes, scopes) && !expires.After(a.expires)
}

func (m *model) mayChange(actor, target string, rotate bool) bool {
	if actor == "" {
		return true
	}
	a, k := m.keys[actor], m.keys[target]
	switch {
	case !has(a.scopes, auth.CredentialsWrite):
		return false
	case m.superseded(actor):
		return false
	case !isAdmin(a.scopes) && !m.owns(actor, target):
		return false
	case !covers(a.scopes, k.scopes):
		return false
	case rotate && k.expires.After(a.expires):
		return false
	}
	return true
}

// predecessors are the earlier versions of id.
func (m *model) predecessors(id string) []string {
	var out []string
	for _, k := range m.keys {
		if k.id != id && slices.Contains(m.chain(k.id, func(k *mkey) string { return k.rotatedTo }), id) {
			out = append(out, k.id)
		}
	}
	return out
}

func (m *model) visible(actor string) []string {
	var out []string
	for _, id := range m.order {
		if actor == "" || isAdmin(m.keys[actor].scopes) || m.owns(actor, id) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// lineage is what revoking id ends: its rotation chain both ways and every
// key any of them created, transitively.
func (m *model) lineage(id string) []string {
	set := []string{id}
	for grew := true; grew; {
		grew = false
		for _, k := range m.keys {
			if slices.Contains(set, k.id) {
				if k.rotatedTo != "" && !slices.Contains(set, k.rotatedTo) {
					set, grew = append(set, k.rotatedTo), true
				}
				continue
			}
			if slices.Contains(set, k.rotatedTo) || slices.Contains(set, k.parent) {
				set, grew = append(set, k.id), true
			}
		}
	}
	return set
}

// world is one keygate: the real store, engine, deliveries and service.
type world struct {
	t       *testing.T
	rng     *rand.Rand
	m       *model
	store   *local.Store
	svc     *credentials.Service
	ring    credentials.Ring
	places  delivery.Places
	root    string
	envVars map[string]bool // variables the env file may hold
	secrets []string        // every secret issued
	seed    uint64
	step    int
	done    map[string]int // outcomes by operation, for the log
}

func newWorld(t *testing.T, seed uint64) *world {
	t.Helper()
	root := t.TempDir()
	w := &world{t: t, rng: rand.New(rand.NewPCG(seed, 0x6b6579676174)), root: root, seed: seed,
		m: &model{keys: map[string]*mkey{}, now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}, envVars: map[string]bool{"KEYGATE_TOKEN": true},
		done: map[string]int{}}
	store, err := local.Open(t.Context(), filepath.Join(root, "data", "keygate.db"), local.Options{Now: w.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	w.store = store
	w.places = delivery.Places{EnvFile: filepath.Join(root, ".env"), KeysDir: filepath.Join(root, "data", "keys")}
	if err := os.WriteFile(w.places.EnvFile, []byte("KEYGATE_TOKEN=unused\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	eng := &rotation.Engine{Name: "local", Dir: filepath.Join(root, "data", "rotation"), EnvFile: w.places.EnvFile, Legacy: auth.TokenVar,
		Backend: store.RotationBackend(), Places: w.places, Now: w.now}
	w.svc = &credentials.Service{Store: store, Places: w.places, Now: w.now}
	w.ring = credentials.Ring{Provider: "local", Local: true, Engine: eng}
	return w
}

func (w *world) now() time.Time { return w.m.now }

func (w *world) failf(format string, args ...any) {
	w.t.Helper()
	w.t.Fatalf("seed %d step %d: %s (replay: KEYGATE_MODEL_SEED=%d)", w.seed, w.step, fmt.Sprintf(format, args...), w.seed)
}

var scopePool = []string{"content:read", "content:read:posts", "content:write", "content:delete:posts", "credentials:read", "credentials:write", "admin"}

func (w *world) randomScopes() auth.Scopes {
	var names []string
	for _, s := range scopePool {
		if w.rng.IntN(3) == 0 {
			names = append(names, s)
		}
	}
	if len(names) == 0 {
		names = []string{"content:read"}
	}
	sc, err := auth.ParseScopes(names)
	if err != nil {
		w.failf("scopes: %v", err)
	}
	return sc
}

// randomDeliver is mostly a reveal (so the model learns the secret), and
// sometimes a file, a variable, or something a caller must never get.
func (w *world) randomDeliver() (arg string, hostile bool) {
	switch n := w.rng.IntN(20); {
	case n < 12:
		return "reveal", false
	case n < 14:
		return "", false
	case n < 15:
		return fmt.Sprintf("env:K%d_TOKEN", w.rng.IntN(1_000_000)), false
	case n < 16:
		return fmt.Sprintf("file:f%d.token", w.rng.IntN(1_000_000)), false
	default:
		hostile := []string{"env:KEYGATE_TRANSPORT", "env:KEYGATE_AUDIT_FILE", "env:AGRENTING_API_KEY", "env:PATH",
			"file:" + filepath.Join(w.root, "data", "rotation", "KEYGATE_TOKEN.journal"), "file:" + filepath.Join(w.root, "data", "rotation", "x.token"),
			"file:../rotation/x.token", "file:" + filepath.Join(w.root, "data", "keygate.db")}
		return hostile[w.rng.IntN(len(hostile))], true
	}
}

// secretOf reads where a delivery put a key's secret.
func (w *world) secretOf(to delivery.Spec, revealed auth.Secret) string {
	switch to.Kind {
	case delivery.Reveal:
		return revealed.Reveal()
	case delivery.Env:
		vars, err := auth.ReadEnvFile(w.places.EnvFile)
		if err != nil {
			w.failf("env file: %v", err)
		}
		w.envVars[to.Target] = true
		return vars[to.Target]
	case delivery.File:
		b, err := os.ReadFile(to.Target)
		if err != nil {
			w.failf("delivered file: %v", err)
		}
		return strings.TrimSpace(string(b))
	}
	w.failf("unexpected destination %v", to)
	return ""
}

// pickActor is a live principal, or the operator ("") now and then, or a
// dead key (which must be refused).
func (w *world) pickActor() (string, *auth.Principal, bool) {
	var live []string
	for _, id := range w.m.order {
		if w.m.alive(id) {
			live = append(live, id)
		}
	}
	if len(live) == 0 || w.rng.IntN(10) == 0 {
		return "", nil, true
	}
	id := live[w.rng.IntN(len(live))]
	if w.rng.IntN(8) == 0 {
		id = w.m.order[w.rng.IntN(len(w.m.order))] // perhaps a dead one
	}
	p, err := w.store.Verify(w.t.Context(), w.m.keys[id].secret)
	if err != nil {
		if w.m.alive(id) {
			w.failf("live key %s does not verify: %v", id, err)
		}
		return id, nil, false
	}
	if !w.m.alive(id) {
		w.failf("dead key %s verifies", id)
	}
	return id, &p, true
}

func caller(p *auth.Principal) credentials.Caller {
	if p == nil {
		return credentials.OperatorCaller
	}
	return credentials.Caller{Principal: p, Cred: auth.Credential{Source: auth.SourceBearer}}
}

func (w *world) checkOutcome(op string, allowed bool, err error) {
	w.t.Helper()
	for _, s := range w.secrets {
		if err != nil && strings.Contains(err.Error(), s) {
			w.failf("%s: a secret is in the error", op)
		}
	}
	if allowed && err != nil {
		w.failf("%s: the model allows it but it failed: %v", op, err)
	}
	if !allowed && err == nil {
		w.failf("%s: the model refuses it but it succeeded", op)
	}
	verdict := "refused"
	if err == nil {
		verdict = "done"
	}
	w.done[strings.Fields(op)[0]+" "+verdict]++
	if os.Getenv("KEYGATE_MODEL_TRACE") != "" {
		w.t.Logf("step %d: %s: allowed=%v err=%v", w.step, op, allowed, err)
	}
	if err != nil {
		var d *policy.Denied
		var fe *provider.FieldError
		if !errors.As(err, &d) && !errors.As(err, &fe) && !errors.Is(err, provider.ErrNotFound) {
			w.failf("%s: refused with a fault, not a reason: %v", op, err)
		}
	}
}

func (w *world) create() {
	actor, p, ok := w.pickActor()
	if !ok {
		return
	}
	scopes := w.randomScopes()
	expires := w.m.now.Add(time.Duration(1+w.rng.IntN(30*24)) * time.Hour)
	if actor == "" && w.rng.IntN(2) == 0 {
		scopes = append(scopes, auth.Scope{Action: auth.CredentialsWrite}, auth.Scope{Action: auth.CredentialsRead})
	}
	if actor != "" && w.rng.IntN(3) > 0 {
		// Mostly ask within the actor's own grant, so the allowed paths
		// are exercised as much as the refusals.
		a := w.m.keys[actor]
		scopes = auth.Scopes{a.scopes[w.rng.IntN(len(a.scopes))]}
		expires = w.m.now.Add(time.Duration(w.rng.Int64N(int64(a.expires.Sub(w.m.now))) + 1))
	}
	arg, hostile := w.randomDeliver()
	allowed := w.m.mayCreate(actor, scopes, expires) && !hostile
	issued, err := w.svc.Create(w.t.Context(), caller(p), w.ring, credentials.CreateRequest{Name: "k" + strconv.Itoa(w.step), Scopes: scopes, ExpiresAt: expires, Deliver: arg})
	w.checkOutcome("create by "+actor, allowed, err)
	if err != nil {
		return
	}
	secret := w.secretOf(issued.Delivered, issued.Secret)
	w.m.keys[issued.Key.ID] = &mkey{id: issued.Key.ID, secret: secret, scopes: scopes, expires: issued.Key.ExpiresAt, parent: actor}
	w.m.order = append(w.m.order, issued.Key.ID)
	w.secrets = append(w.secrets, secret)
}

// pickTarget is any key, or (half the time) one the actor owns, so that
// allowed changes are exercised as much as refused ones.
func (w *world) pickTarget(actor string) string {
	if actor != "" && w.rng.IntN(2) == 0 {
		var own []string
		for _, id := range w.m.order {
			if w.m.owns(actor, id) {
				own = append(own, id)
			}
		}
		if len(own) > 0 {
			return own[w.rng.IntN(len(own))]
		}
	}
	return w.m.order[w.rng.IntN(len(w.m.order))]
}

func (w *world) rotate() {
	if len(w.m.order) == 0 {
		return
	}
	actor, p, ok := w.pickActor()
	if !ok {
		return
	}
	target := w.pickTarget(actor)
	k := w.m.keys[target]
	grace := []time.Duration{0, 0, time.Hour}[w.rng.IntN(3)]
	arg, hostile := w.randomDeliver()
	rotatable := w.m.alive(target) && k.rotatedTo == ""
	allowed := w.m.mayChange(actor, target, true) && rotatable && !hostile
	plan, err := w.svc.PlanRotate(w.t.Context(), caller(p), w.ring, credentials.RotateRequest{Credential: target, Grace: grace, Deliver: arg})
	var res credentials.Rotated
	if err == nil {
		res, err = w.svc.Rotate(w.t.Context(), plan)
	}
	w.checkOutcome(fmt.Sprintf("rotate %s by %s", target, actor), allowed, err)
	if err != nil {
		return
	}
	if res.Warning != "" {
		w.failf("rotate: warning %s", res.Warning)
	}
	secret := w.secretOf(res.Delivered, res.Secret)
	n := &mkey{id: res.New.ID, secret: secret, scopes: k.scopes, expires: k.expires, parent: k.parent}
	for _, c := range w.m.keys {
		if c.parent == target {
			c.parent = n.id
		}
	}
	k.rotatedTo = n.id
	// The old key and its earlier versions end together.
	for _, id := range append([]string{target}, w.m.predecessors(target)...) {
		old := w.m.keys[id]
		if grace == 0 {
			old.revoked = true
		} else if end := w.m.now.Add(grace); end.Before(old.expires) {
			old.expires = end
		}
	}
	w.m.keys[n.id] = n
	w.m.order = append(w.m.order, n.id)
	w.secrets = append(w.secrets, secret)
}

func (w *world) revoke() {
	if len(w.m.order) == 0 {
		return
	}
	actor, p, ok := w.pickActor()
	if !ok {
		return
	}
	target := w.pickTarget(actor)
	allowed := w.m.mayChange(actor, target, false)
	plan, err := w.svc.PlanRevoke(w.t.Context(), caller(p), w.ring, target)
	if err == nil {
		_, err = w.svc.Revoke(w.t.Context(), plan)
	}
	w.checkOutcome(fmt.Sprintf("revoke %s by %s", target, actor), allowed, err)
	if err != nil {
		return
	}
	for _, id := range w.m.lineage(target) {
		if k := w.m.keys[id]; w.m.alive(id) || !k.revoked {
			k.revoked = true
		}
	}
}

func (w *world) list() {
	actor, p, ok := w.pickActor()
	if !ok {
		return
	}
	allowed := actor == "" || has(w.m.keys[actor].scopes, auth.CredentialsRead)
	keys, err := w.svc.List(w.t.Context(), caller(p), w.ring)
	w.checkOutcome("list by "+actor, allowed, err)
	if err != nil {
		return
	}
	var got []string
	for _, k := range keys {
		got = append(got, k.ID)
	}
	slices.Sort(got)
	if want := w.m.visible(actor); !slices.Equal(got, want) {
		w.failf("list by %s shows %v, the model %v", actor, got, want)
	}
}

// checkWorld compares every key with the model, and keygate's files with
// what callers may have made.
func (w *world) checkWorld(all bool) {
	w.t.Helper()
	for i, id := range w.m.order {
		if !all && i%7 != w.step%7 {
			continue
		}
		_, err := w.store.Verify(w.t.Context(), w.m.keys[id].secret)
		if works := err == nil; works != w.m.alive(id) {
			w.failf("key %s works=%v, the model says alive=%v", id, works, w.m.alive(id))
		}
	}
	vars, err := auth.ReadEnvFile(w.places.EnvFile)
	if err != nil {
		w.failf("env file: %v", err)
	}
	for name := range vars {
		if !w.envVars[name] {
			w.failf("the env file gained a variable no caller may set: %s", name)
		}
	}
	if vars["KEYGATE_TOKEN"] != "unused" {
		w.failf("keygate's own token in the env file was changed")
	}
	revoked := map[string]string{} // secret -> id
	for _, id := range w.m.order {
		if k := w.m.keys[id]; k.revoked {
			revoked[k.secret] = id
		}
	}
	for name, v := range vars {
		if id, ok := revoked[v]; ok {
			w.failf("%s in the env file still holds revoked key %s", name, id)
		}
	}
	err = filepath.WalkDir(filepath.Join(w.root, "data"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(w.root, path)
		switch dir, name := filepath.Dir(rel), d.Name(); {
		case dir == "data" && strings.HasPrefix(name, "keygate.db"):
		case dir == filepath.Join("data", "keys") && strings.HasSuffix(name, ".token"):
			if b, err := os.ReadFile(path); err == nil {
				if id, ok := revoked[strings.TrimSpace(string(b))]; ok {
					w.failf("%s still holds revoked key %s", rel, id)
				}
			}
		case dir == filepath.Join("data", "rotation") && strings.HasSuffix(name, ".lock"):
		default:
			w.failf("unexpected file in keygate's state: %s", rel)
		}
		return nil
	})
	if err != nil {
		w.failf("walking the store: %v", err)
	}
}

func modelSeeds(t *testing.T) ([]uint64, int) {
	steps, seeds := testtier.Pick(300, 500), testtier.Pick(2, 20)
	if s := os.Getenv("KEYGATE_MODEL_STEPS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("KEYGATE_MODEL_STEPS=%q", s)
		}
		steps = n
	}
	if s := os.Getenv("KEYGATE_MODEL_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("KEYGATE_MODEL_SEED=%q", s)
		}
		return []uint64{n}, steps
	}
	out := make([]uint64, seeds)
	for i := range out {
		out[i] = uint64(i + 1)
	}
	return out, steps
}

func TestModelOfKeyOperations(t *testing.T) {
	seeds, steps := modelSeeds(t)
	total := 0
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			w := newWorld(t, seed)
			for w.step = 0; w.step < steps; w.step++ {
				switch n := w.rng.IntN(100); {
				case n < 35:
					w.create()
				case n < 60:
					w.rotate()
				case n < 75:
					w.revoke()
				case n < 85:
					w.list()
				default:
					w.m.now = w.m.now.Add(time.Duration(w.rng.IntN(180)) * time.Minute)
				}
				w.checkWorld(w.step%25 == 0)
			}
			w.checkWorld(true)
			total += steps
			t.Logf("%d keys; outcomes %v", len(w.m.order), w.done)
		})
	}
	t.Logf("%d steps over %d seeds", total, len(seeds))
}
