package tools

import (
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
