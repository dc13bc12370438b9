package tools

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/identity"
	"github.com/keygate/keygate/policy"
	"github.com/keygate/keygate/provider"
)

// Problem is the structured form of an error the model can act on.
type Problem struct {
	Field   string `json:"field,omitempty"`
	Problem string `json:"problem"`
	Fix     string `json:"fix,omitempty"`
}

// errorResult is an isError result naming the field and the fix, both as
// text and as structured content. Each part is kept on one line, through
// the sanitiser, and the text cannot start like a fence line: parts may
// carry a provider's words.
func errorResult(field, problem, fix string) *mcp.CallToolResult {
	field, problem, fix = lineStart(oneLine(field)), lineStart(oneLine(problem)), oneLine(fix)
	var b strings.Builder
	if field != "" {
		b.WriteString(field + ": ")
	}
	b.WriteString(problem)
	if fix != "" {
		b.WriteString(". Fix: " + fix)
	}
	res := mcp.NewToolResultStructured(map[string]any{"error": Problem{Field: field, Problem: problem, Fix: fix}}, b.String())
	res.IsError = true
	return res
}

// okResult returns v as structured content with a compact text rendering.
func okResult(v any, text string) *mcp.CallToolResult {
	return mcp.NewToolResultStructured(v, text)
}

// providerError turns an error from a provider into a result the model can
// act on, or passes a real fault through as a Go error.
func providerError(err error, typ string) (*mcp.CallToolResult, error) {
	var fe *provider.FieldError
	var nf *provider.NotFoundError
	var vc *provider.VersionConflictError
	var ge *auth.GrantError
	var denied *policy.Denied
	var rationed *provider.RationedError
	switch {
	case errors.As(err, &fe):
		// A remote provider may put the API's message in Problem.
		return errorResult(clip(fe.Field, maxProviderText), clip(fe.Problem, 2*maxProviderText), clip(fe.Fix, maxProviderText)), nil
	case errors.As(err, &denied):
		return errorResult(denied.Field, denied.Reason, denied.Fix), nil
	case errors.As(err, &ge):
		return errorResult(ge.Field, ge.Problem, ge.Fix), nil
	case errors.As(err, &vc):
		res := errorResult("expected_version", fmt.Sprintf("stale: you sent %d but the object is at version %d", vc.Expected, vc.Current),
			fmt.Sprintf("read the object again with content_get, reapply your change and send expected_version %d", vc.Current))
		res.StructuredContent.(map[string]any)["current_version"] = vc.Current
		return res, nil
	case errors.As(err, &nf):
		name := clip(nf.Name, maxProviderText)
		switch nf.What {
		case "content type":
			return errorResult("type", fmt.Sprintf("content type %q does not exist", name), "call content_types to see the types you can use"), nil
		case "object":
			return errorResult("id", fmt.Sprintf("no %s object with id or slug %q", typ, name), "call content_list to find the id"), nil
		case "key":
			return errorResult("credential", fmt.Sprintf("no key with id %q", name), "call credentials_list to see key ids"), nil
		}
		return errorResult("", fmt.Sprintf("%s %q not found", clip(nf.What, maxProviderText), name), ""), nil
	case errors.Is(err, provider.ErrPermission):
		return errorResult("provider", "the provider refused the credential for this action: "+upstreamDetail(err), "check what the credential may do with auth_check_scopes, or use a key with more permissions"), nil
	case errors.Is(err, provider.ErrUnauthorized):
		return errorResult("provider", "the provider rejected keygate's credential for it (revoked, expired or mistyped): "+upstreamDetail(err),
			"rotate the key in the provider's dashboard and update the variable auth_whoami names; keygate reads it at start-up"), nil
	case errors.As(err, &rationed):
		return errorResult("", rationed.Problem(), rationed.Fix()), nil
	case errors.Is(err, provider.ErrRateLimited):
		fix := "wait a minute and retry"
		var ue *provider.UpstreamError
		if errors.As(err, &ue) && ue.RetryAfter > 0 {
			fix = fmt.Sprintf("retry after %s", ue.RetryAfter.Round(time.Second))
		}
		return errorResult("", "the provider is rate limiting keygate: "+upstreamDetail(err), fix), nil
	case errors.Is(err, provider.ErrUnavailable):
		return errorResult("", "the provider could not be reached or failed: "+upstreamDetail(err), "retry later; auth_whoami checks reachability"), nil
	case errors.Is(err, provider.ErrOutcomeUnknown):
		return errorResult("", "the write was sent but its outcome is unknown: "+upstreamDetail(err), "check with content_get or content_list before retrying, so nothing is written twice"), nil
	case errors.Is(err, provider.ErrUnsupported):
		return errorResult("", upstreamDetail(err), "see the provider's section in keygate's README for what it supports"), nil
	}
	var ue *provider.UpstreamError
	if errors.As(err, &ue) {
		return errorResult("", upstreamDetail(err), "check the arguments against the provider's rules; auth_whoami and auth_check_scopes show what the credential may do"), nil
	}
	return nil, err
}

// upstreamDetail is a provider's account of a failure. An API's answer
// is marked as the provider's: which provider, the status, then its code
// and message in quotes (quoteProviderText), e.g. `cosmic answered 400 and
// said: "..."`. Any other error is the provider client's own text, kept on
// one line and cut short.
func upstreamDetail(err error) string {
	var ue *provider.UpstreamError
	if !errors.As(err, &ue) {
		return clip(err.Error(), 2*maxProviderText)
	}
	var b strings.Builder
	b.WriteString(firstNonEmpty(oneLine(ue.Provider), "the provider"))
	if ue.Status > 0 {
		fmt.Fprintf(&b, " answered %d", ue.Status)
	}
	if ue.Code != "" {
		fmt.Fprintf(&b, " with code %s", quoteProviderText(ue.Code))
	}
	switch {
	case ue.Message != "" && (ue.Status > 0 || ue.Code != ""):
		b.WriteString(" and said: " + quoteProviderText(ue.Message))
	case ue.Message != "":
		b.WriteString(" said: " + quoteProviderText(ue.Message))
	case ue.Status == 0 && ue.Code == "":
		b.WriteString(" failed")
	}
	return b.String()
}

// credentialProblem explains why no verified caller could be found. It
// never says which check failed: the model cannot fix a token anyway, the
// user can.
func credentialProblem(err error) *mcp.CallToolResult {
	switch {
	case errors.Is(err, identity.ErrNoCredential):
		return errorResult("", "no keygate credential is configured",
			"set KEYGATE_TOKEN in the environment or the .env file (keygate writes one on first run), or call auth_authenticate")
	case errors.Is(err, auth.ErrInvalidToken):
		return errorResult("", "invalid token: the keygate credential in use was refused (it may be revoked, expired or mistyped)",
			"ask the user for a valid token (keygate token create) and set KEYGATE_TOKEN, or call auth_authenticate")
	}
	return errorResult("", "the credential could not be checked right now, so the call was refused",
		"retry; if it persists the store is unavailable (see keygate's log)")
}

func insufficientScope(tool string, need auth.Action, have auth.Scopes) *mcp.CallToolResult {
	return errorResult("", fmt.Sprintf("insufficient_scope: %s needs %s; the credential holds %s", tool, need, scopeList(have)),
		fmt.Sprintf("use a key with %s (keygate token create --scopes %s)", need, need))
}

func scopeList(s auth.Scopes) string {
	if len(s) == 0 {
		return "no scopes"
	}
	return strings.Join(s.Strings(), ", ")
}

// redactResult runs the redaction pass over every text and the structured
// content of a result. Values in allow were revealed on purpose (a new key's
// one showing) and are kept.
func redactResult(r *auth.Redactor, res *mcp.CallToolResult, allow []string) {
	pass := func(s string) string {
		if len(allow) == 0 {
			return r.Redact(s)
		}
		// Shield the revealed values from the pass, then put them back.
		for i, v := range allow {
			s = strings.ReplaceAll(s, v, fmt.Sprintf("\x00reveal%d\x00", i))
		}
		s = r.Redact(s)
		for i, v := range allow {
			s = strings.ReplaceAll(s, fmt.Sprintf("\x00reveal%d\x00", i), v)
		}
		return s
	}
	for i, c := range res.Content {
		if tc, ok := c.(mcp.TextContent); ok {
			tc.Text = pass(tc.Text)
			res.Content[i] = tc
		}
	}
	if res.StructuredContent != nil {
		// A handler that already encoded its result (content_get) hands
		// over the JSON, which need not be encoded again.
		b, ok := res.StructuredContent.(json.RawMessage)
		if !ok {
			var err error
			if b, err = json.Marshal(res.StructuredContent); err != nil {
				res.StructuredContent = nil
				return
			}
		}
		in := string(b)
		out := pass(in)
		switch {
		case out == in:
			// Nothing to mask, the usual case: keep the JSON as it is.
			res.StructuredContent = json.RawMessage(b)
		case !json.Valid([]byte(out)):
			// A secret straddled JSON escaping; drop the structured copy
			// rather than send something broken. The text stays.
			res.StructuredContent = nil
		default:
			res.StructuredContent = json.RawMessage(out)
		}
	}
}
