package cosmic

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/cosmic/cosmictest"
	"github.com/keygate/keygate/provider/internal/providertest"
)

// Tests of the wire facts in docs/providers/cosmic.md that keygate got
// wrong before: each fails against the adapter that ignored the fact.

// lastPatch returns the decoded body of the last PATCH the fake received.
func lastPatch(t *testing.T, r *rig) map[string]any {
	t.Helper()
	seen := r.fake.Seen()
	for i := len(seen) - 1; i >= 0; i-- {
		if seen[i].Method == http.MethodPatch {
			var body map[string]any
			if err := json.Unmarshal([]byte(seen[i].Body), &body); err != nil {
				t.Fatalf("PATCH body %q: %v", seen[i].Body, err)
			}
			return body
		}
	}
	t.Fatal("no PATCH was sent")
	return nil
}

// TestUpdateSendsOnlyChangedFields: PATCH carries only the metafields the
// caller changes, as the official SDK, MCP server and CLI send them, so an
// edit another client makes between keygate's read and its write survives,
// and a file metafield, which a read returns expanded, is never sent back.
func TestUpdateSendsOnlyChangedFields(t *testing.T) {
	const id = "65a000000000000000000001"
	// Another editor changes views and the hero image while keygate is
	// between its read of the object and its PATCH.
	concurrent := func(fake *cosmictest.Server, next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.Method == http.MethodPatch && strings.HasSuffix(req.URL.Path, "/objects/"+id) {
				o, _ := fake.Object(id)
				o.Metadata["views"] = 999.0
				o.Metadata["hero"] = "new-hero.jpg"
				fake.PutObject(o)
			}
			next.ServeHTTP(w, req)
		})
	}
	r := newRigVia(t, nil, concurrent)
	o, _ := r.fake.Object(id)
	// A file metafield as a read returns it: expanded to URLs, a form a
	// write does not take (it takes the media name).
	o.Metadata["hero"] = map[string]any{"url": "https://cdn.cosmicjs.com/hero.jpg", "imgix_url": "https://imgix.cosmicjs.com/hero.jpg"}
	r.fake.PutObject(o)

	if _, err := r.client.Update(providertest.Context(t), provider.Patch{Type: "posts", ID: id, Fields: json.RawMessage(`{"author":"grace"}`)}); err != nil {
		t.Fatal(err)
	}
	if body := lastPatch(t, r); !jsonEqual(body, map[string]any{"metadata": map[string]any{"author": "grace"}}) {
		t.Errorf("PATCH body %v, want only the changed metafield", body)
	}
	stored, _ := r.fake.Object(id)
	if stored.Metadata["author"] != "grace" || stored.Metadata["views"] != 999.0 || stored.Metadata["hero"] != "new-hero.jpg" {
		t.Errorf("the concurrent edit was overwritten: %v", stored.Metadata)
	}
}

// TestUpdateRefusesRemoval: Cosmic keeps one value per metafield of the
// object type, so a null (remove) is refused with a fix, before any write.
func TestUpdateRefusesRemoval(t *testing.T) {
	r := newRig(t, nil)
	_, err := r.client.Update(providertest.Context(t), provider.Patch{Type: "posts", ID: "65a000000000000000000001", Fields: json.RawMessage(`{"views":1,"tags":null}`)})
	var fe *provider.FieldError
	if !errors.As(err, &fe) || fe.Field != "fields.tags" || !strings.Contains(fe.Problem, "cannot remove") || !strings.Contains(fe.Fix, `""`) {
		t.Fatalf("err = %v", err)
	}
	for _, req := range r.fake.Seen() {
		if req.Method != http.MethodGet {
			t.Errorf("a %s was sent", req.Method)
		}
	}
	if stored, _ := r.fake.Object("65a000000000000000000001"); stored.Metadata["views"] != 120.0 {
		t.Error("the object changed")
	}
}

// TestCreateWithWriteKeyOnly: POST needs only the write key, so a setup
// without a read key can create; Cosmic's own answer decides what the
// read-key pre-checks would have. Update and delete read the object first
// (to check its type) and say that they need the read key.
func TestCreateWithWriteKeyOnly(t *testing.T) {
	r := newRig(t, func(e env) { delete(e, EnvReadKey) }) // the bucket still refuses keyless reads
	ctx := providertest.Context(t)
	o, err := r.client.Create(ctx, provider.NewObject{Type: "posts", Title: "Write only", Slug: "write-only", Status: "draft",
		Fields: json.RawMessage(`{"body":"<p>x</p>"}`)})
	if err != nil {
		t.Fatal(err)
	}
	stored, ok := r.fake.Object(o.ID)
	if !ok || stored.Slug != "write-only" || o.Type != "posts" || o.Status != "draft" || !strings.Contains(string(o.Fields), `"body"`) {
		t.Fatalf("created %+v, stored %+v", o, stored)
	}
	for _, req := range r.fake.Seen() {
		if req.Method != http.MethodPost || req.Query.Get("read_key") != "" {
			t.Errorf("sent %s %s", req.Method, req.Path)
		}
	}

	errs := []struct {
		name  string
		n     provider.NewObject
		field string
	}{
		{"duplicate slug", provider.NewObject{Type: "posts", Title: "Again", Slug: "hello-world", Status: "draft"}, "slug"},
		{"unknown type", provider.NewObject{Type: "nosuch", Title: "X", Slug: "x", Status: "draft"}, "type"},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			n := len(r.fake.Objects(""))
			_, err := r.client.Create(ctx, tc.n)
			var fe *provider.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("err = %v", err)
			}
			if len(r.fake.Objects("")) != n {
				t.Error("an object was created")
			}
		})
	}

	t.Run("update and delete name the read key", func(t *testing.T) {
		title := "x"
		_, uerr := r.client.Update(ctx, provider.Patch{Type: "posts", ID: o.ID, Title: &title})
		_, derr := r.client.Delete(ctx, "posts", o.ID)
		for _, err := range []error{uerr, derr} {
			if !errors.Is(err, provider.ErrPermission) || !strings.Contains(err.Error(), EnvReadKey) {
				t.Errorf("err = %v", err)
			}
		}
		if stored, ok := r.fake.Object(o.ID); !ok || stored.Title != "Write only" {
			t.Error("the object changed")
		}
	})
}

// TestWriteKeyProbe: the write-key check is a PATCH the docs allow (one
// parameter) of an object that cannot exist. It proves the key only when
// Cosmic refuses a made-up key on the same request; otherwise the answer
// is "unknown until tried".
func TestWriteKeyProbe(t *testing.T) {
	ops := []auth.Scope{{Action: auth.ContentWrite}, {Action: auth.ContentDelete, Type: "posts"}}
	tests := []struct {
		name           string
		edit           func(env)
		opts           []cosmictest.Option
		allowed, known bool
		verified       string
		reason         string
	}{
		{"key checked first, good key", nil, nil, true, true, provider.VerifiedOK, "made-up key"},
		{"key checked first, bad key", func(e env) { e[EnvWriteKey] = "badwritekey123456789" }, nil, false, true, provider.VerifiedRejected, "rejected"},
		{"object looked up first", nil, []cosmictest.Option{cosmictest.WithObjectLookupBeforeWriteKey()}, false, false, provider.VerifiedNotChecked, "unknown until tried"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.edit, tc.opts...)
			ctx := providertest.Context(t)
			before := r.fake.Objects("")
			got, err := r.client.CheckAccess(ctx, provider.ScopeOps(ops))
			if err != nil {
				t.Fatal(err)
			}
			for i, a := range got {
				if a.Allowed != tc.allowed || a.Known != tc.known || !strings.Contains(a.Reason, tc.reason) {
					t.Errorf("%s: %+v", ops[i], a)
				}
			}
			d, err := r.client.Describe(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, cr := range d.Credentials {
				if cr.Name == EnvWriteKey && cr.Verified != tc.verified {
					t.Errorf("write key verified %q (%s)", cr.Verified, cr.Detail)
				}
			}
			for _, req := range r.fake.Seen() {
				switch req.Method {
				case http.MethodGet:
				case http.MethodPatch:
					var body map[string]any
					_ = json.Unmarshal([]byte(req.Body), &body)
					if !strings.HasSuffix(req.Path, "/objects/"+probeID) || body["title"] == nil {
						t.Errorf("probe PATCH %s %s: not a documented no-op", req.Path, req.Body)
					}
					if auth := req.Header.Get("Authorization"); auth != "Bearer "+r.client.cfg.WriteKey.Secret.Reveal() && len(auth) != len("Bearer ")+len(r.client.cfg.WriteKey.Secret.Reveal()) {
						t.Errorf("control key of another shape: %d bytes", len(auth))
					}
				default:
					t.Errorf("the probe sent a %s", req.Method)
				}
			}
			if after := r.fake.Objects(""); !jsonEqual(before, after) {
				t.Error("the probe changed content")
			}
		})
	}
}

// TestAgentStatusPlanID: the agent's plan is plan_id in the status answer;
// the access token that comes with it is never passed on.
func TestAgentStatusPlanID(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []cosmictest.Option
		plan string
	}{
		{"unclaimed", nil, "agent-trial"},
		{"claimed", []cosmictest.Option{cosmictest.WithAgentClaimed()}, "free"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil, tc.opts...)
			d, err := r.client.Describe(providertest.Context(t))
			if err != nil {
				t.Fatal(err)
			}
			agent, _ := d.Details["agent"].(map[string]any)
			if agent["plan_id"] != tc.plan {
				t.Errorf("agent details %v", d.Details["agent"])
			}
			out, _ := json.Marshal(d)
			logs := r.logs.String()
			for _, secret := range []string{cosmictest.AgentAccessToken, "human@example.com"} {
				if strings.Contains(string(out), secret) || strings.Contains(logs, secret) {
					t.Errorf("%.12s… reached the description or the log", secret)
				}
			}
		})
	}
}
