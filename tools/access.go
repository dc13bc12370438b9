package tools

import (
	"context"
	"slices"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/keygate/keygate/auth"
)

// Refusal is the answer to "may this caller call this tool?": Allowed, or
// why not.
type Refusal int

const (
	Allowed Refusal = iota
	// NoCredential: there is no verified caller.
	NoCredential
	// MissingScope: the caller's scopes grant the tool's action on no type.
	MissingScope
	// MissingTypeScope: they grant it, but not on the type asked for.
	MissingTypeScope
)

// Decide is keygate's one access decision, shared by the tool filter,
// the call middleware and the HTTP transport's insufficient_scope answer.
// p is the verified caller (nil: none); need is the tool's action ("":
// anyone may call it); typ is the content type the call names ("": the
// tool is allowed when the action is granted on some type).
func Decide(p *auth.Principal, need auth.Action, typ string) Refusal {
	switch {
	case need == "":
		return Allowed
	case p == nil:
		return NoCredential
	case !p.Scopes.AllowsSome(need):
		return MissingScope
	case typ != "" && !p.Scopes.Allows(need, typ):
		return MissingTypeScope
	}
	return Allowed
}

// ScopeCheckFor answers, for the HTTP transport, which action a served tool
// needs and whether p holds it; known is false for a tool not served.
func ScopeCheckFor(served []ServerTool) func(p auth.Principal, tool string) (need auth.Action, allowed, known bool) {
	needs := make(map[string]auth.Action, len(served))
	for _, t := range served {
		needs[t.Tool.Name] = t.Needs
	}
	return func(p auth.Principal, tool string) (auth.Action, bool, bool) {
		need, known := needs[tool]
		return need, Decide(&p, need, "") == Allowed, known
	}
}

// scopeFilter hides the tools the acting credential cannot use. mcp-go runs
// it for tools/list and again for tools/call, so a hidden tool cannot be
// called either (it is "not found").
func scopeFilter(d *Deps, served []ServerTool) server.ToolFilterFunc {
	needs := map[string]auth.Action{}
	for _, t := range served {
		needs[t.Tool.Name] = t.Needs
	}
	return func(ctx context.Context, in []mcp.Tool) []mcp.Tool {
		var caller *auth.Principal
		if p, _, err := d.Identity.Resolve(ctx); err == nil {
			caller = &p
		}
		allowed := func(t mcp.Tool) bool { return Decide(caller, needs[t.Name], "") == Allowed }
		if !slices.ContainsFunc(in, func(t mcp.Tool) bool { return !allowed(t) }) {
			// Everything passes, as for any tools/call that will run: no
			// copy of the (large) tool values is needed.
			return in
		}
		out := in[:0:0]
		for _, t := range in {
			if allowed(t) {
				out = append(out, t)
			}
		}
		return out
	}
}

// catalog is a server's tools: every tool keygate has, and those it serves.
type catalog struct {
	all, served []ServerTool
}

// HiddenTool is a tool the credential cannot use, and why.
type HiddenTool struct {
	Tool  string `json:"tool"`
	Needs string `json:"needs"`
}

// access splits the served tools into those principal p (nil: no valid
// credential) may call and those hidden from it, in registry order.
func (c *catalog) access(p *auth.Principal) (avail []string, hidden []HiddenTool) {
	avail = []string{}
	for _, t := range c.served {
		if Decide(p, t.Needs, "") == Allowed {
			avail = append(avail, t.Tool.Name)
		} else {
			hidden = append(hidden, HiddenTool{Tool: t.Tool.Name, Needs: string(t.Needs)})
		}
	}
	return avail, hidden
}

// lookup finds a tool by name, and says whether it is served.
func (c *catalog) lookup(name string) (t ServerTool, served, ok bool) {
	i := slices.IndexFunc(c.all, func(t ServerTool) bool { return t.Tool.Name == name })
	if i < 0 {
		return ServerTool{}, false, false
	}
	return c.all[i], slices.ContainsFunc(c.served, func(s ServerTool) bool { return s.Tool.Name == name }), true
}

// VisibleTools lists the served tools a credential with principal p may see
// (nil: no valid credential), in registry order.
func VisibleTools(served []ServerTool, p *auth.Principal) []string {
	avail, _ := (&catalog{served: served}).access(p)
	return avail
}
