package tools

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/identity"
	"github.com/keygate/keygate/policy"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/shape"
)

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
		return shape.Error(shape.Clip(fe.Field, shape.MaxProviderText), shape.Clip(fe.Problem, 2*shape.MaxProviderText), shape.Clip(fe.Fix, shape.MaxProviderText)), nil
	case errors.As(err, &denied):
		return shape.Error(denied.Field, denied.Reason, denied.Fix), nil
	case errors.As(err, &ge):
		return shape.Error(ge.Field, ge.Problem, ge.Fix), nil
	case errors.As(err, &vc):
		res := shape.Error("expected_version", fmt.Sprintf("stale: you sent %d but the object is at version %d", vc.Expected, vc.Current),
			fmt.Sprintf("read the object again with content_get, reapply your change and send expected_version %d", vc.Current))
		res.StructuredContent.(map[string]any)["current_version"] = vc.Current
		return res, nil
	case errors.As(err, &nf):
		name := shape.Clip(nf.Name, shape.MaxProviderText)
		switch nf.What {
		case "content type":
			return shape.Error("type", fmt.Sprintf("content type %q does not exist", name), "call content_types to see the types you can use"), nil
		case "object":
			return shape.Error("id", fmt.Sprintf("no %s object with id or slug %q", typ, name), "call content_list to find the id"), nil
		case "key":
			return shape.Error("credential", fmt.Sprintf("no key with id %q", name), "call credentials_list to see key ids"), nil
		}
		return shape.Error("", fmt.Sprintf("%s %q not found", shape.Clip(nf.What, shape.MaxProviderText), name), ""), nil
	case errors.Is(err, provider.ErrPermission):
		return shape.Error("provider", "the provider refused the credential for this action: "+upstreamDetail(err), "check what the credential may do with auth_check_scopes, or use a key with more permissions"), nil
	case errors.Is(err, provider.ErrUnauthorized):
		return shape.Error("provider", "the provider rejected keygate's credential for it (revoked, expired or mistyped): "+upstreamDetail(err),
			"rotate the key in the provider's dashboard and update the variable auth_whoami names; keygate reads it at start-up"), nil
	case errors.As(err, &rationed):
		return shape.Error("", rationed.Problem(), rationed.Fix()), nil
	case errors.Is(err, provider.ErrRateLimited):
		fix := "wait a minute and retry"
		var ue *provider.UpstreamError
		if errors.As(err, &ue) && ue.RetryAfter > 0 {
			fix = fmt.Sprintf("retry after %s", ue.RetryAfter.Round(time.Second))
		}
		return shape.Error("", "the provider is rate limiting keygate: "+upstreamDetail(err), fix), nil
	case errors.Is(err, provider.ErrOutcomeUnknown):
		// Before ErrUnavailable: a write whose answer was lost matches both,
		// and retrying it blindly could write it twice.
		return shape.Error("", "the write was sent but its outcome is unknown: "+upstreamDetail(err), "check with content_get or content_list before retrying, so nothing is written twice"), nil
	case errors.Is(err, provider.ErrUnavailable):
		return shape.Error("", "the provider could not be reached or failed: "+upstreamDetail(err), "retry later; auth_whoami checks reachability"), nil
	case errors.Is(err, provider.ErrUnsupported):
		return shape.Error("", upstreamDetail(err), "see the provider's section in keygate's README for what it supports"), nil
	}
	var ue *provider.UpstreamError
	if errors.As(err, &ue) {
		return shape.Error("", upstreamDetail(err), "check the arguments against the provider's rules; auth_whoami and auth_check_scopes show what the credential may do"), nil
	}
	return nil, err
}

// upstreamDetail is a provider's account of a failure. An API's answer
// is marked as the provider's: which provider, the status, then its code
// and message in quotes (quoteProviderText), e.g. `cosmic answered 400 and
// said: "..."`. Any other error is the provider client's own text, kept on
// one line and cut short.
func upstreamDetail(err error) string {
	var pe provider.PublicError
	if errors.As(err, &pe) {
		return shape.Clip(pe.PublicText(), 2*shape.MaxProviderText)
	}
	var ue *provider.UpstreamError
	if !errors.As(err, &ue) {
		return shape.Clip(err.Error(), 2*shape.MaxProviderText)
	}
	var b strings.Builder
	b.WriteString(firstNonEmpty(shape.OneLine(ue.Provider), "the provider"))
	if ue.Status > 0 {
		fmt.Fprintf(&b, " answered %d", ue.Status)
	}
	if ue.Code != "" {
		fmt.Fprintf(&b, " with code %s", shape.QuoteProviderText(ue.Code))
	}
	switch {
	case ue.Message != "" && (ue.Status > 0 || ue.Code != ""):
		b.WriteString(" and said: " + shape.QuoteProviderText(ue.Message))
	case ue.Message != "":
		b.WriteString(" said: " + shape.QuoteProviderText(ue.Message))
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
		return shape.Error("", "no keygate credential is configured",
			"set KEYGATE_TOKEN in the environment or the .env file (keygate writes one on first run), or call auth_authenticate")
	case errors.Is(err, auth.ErrInvalidToken):
		return shape.Error("", "invalid token: the keygate credential in use was refused (it may be revoked, expired or mistyped)",
			"ask the user for a valid token (keygate token create) and set KEYGATE_TOKEN, or call auth_authenticate")
	}
	return shape.Error("", "the credential could not be checked right now, so the call was refused",
		"retry; if it persists the store is unavailable (see keygate's log)")
}

func insufficientScope(tool string, need auth.Action, have auth.Scopes) *mcp.CallToolResult {
	return shape.Error("", fmt.Sprintf("insufficient_scope: %s needs %s; the credential holds %s", tool, need, scopeList(have)),
		fmt.Sprintf("use a key with %s (keygate token create --scopes %s)", need, need))
}

func scopeList(s auth.Scopes) string {
	if len(s) == 0 {
		return "no scopes"
	}
	return strings.Join(s.Strings(), ", ")
}
