package tools

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/keygate/keygate/shape"
)

// argValidator checks tool arguments against the tool's input schema.
// keygate does this itself rather than with mcp-go's WithInputSchemaValidation
// because mcp-go's messages quote the offending value ("Got: ..."), which may
// be a secret pasted into the wrong field, and run before keygate's
// redaction pass. These messages name the field, the rule and the fix, and
// never the value.
type argValidator struct {
	mu      sync.Mutex
	tools   map[string]mcp.Tool
	schemas map[string]*jsonschema.Schema
}

// newArgValidator prepares validation for tools. Schemas compile on a
// tool's first call, not at start-up: compiling all of them is most of
// keygate's cold start, and a session rarely calls every tool. A test
// compiles every schema, so a bad one still fails the build.
func newArgValidator(tools []ServerTool) (*argValidator, error) {
	v := &argValidator{tools: map[string]mcp.Tool{}, schemas: map[string]*jsonschema.Schema{}}
	for _, t := range tools {
		v.tools[t.Tool.Name] = t.Tool
	}
	return v, nil
}

// schema returns the compiled schema of a tool, compiling it once.
func (v *argValidator) schema(name string) (*jsonschema.Schema, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if s, ok := v.schemas[name]; ok {
		return s, nil
	}
	t, ok := v.tools[name]
	if !ok {
		return nil, nil
	}
	s, err := compileInputSchema(t)
	if err != nil {
		return nil, err
	}
	v.schemas[name] = s
	return s, nil
}

func compileInputSchema(t mcp.Tool) (*jsonschema.Schema, error) {
	raw, err := json.Marshal(t.InputSchema)
	if err != nil {
		return nil, fmt.Errorf("encoding %s input schema: %w", t.Name, err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("decoding %s input schema: %w", t.Name, err)
	}
	c := jsonschema.NewCompiler()
	url := "mem:///keygate/" + t.Name + ".json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("adding %s input schema: %w", t.Name, err)
	}
	s, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("compiling %s input schema: %w", t.Name, err)
	}
	return s, nil
}

// check returns nil when args satisfy the schema of tool, else an isError
// result naming the first offending field.
func (v *argValidator) check(tool string, req mcp.CallToolRequest) *mcp.CallToolResult {
	s, err := v.schema(tool)
	if err != nil {
		// A schema that does not compile is a bug; refuse rather than run
		// the tool unchecked.
		return shape.Error("", "keygate cannot check this tool's arguments: "+err.Error(), "report this as a bug in keygate")
	}
	if s == nil {
		return nil
	}
	args := req.GetArguments()
	if args == nil {
		args = map[string]any{}
	}
	var inst any = args
	if !decodedJSON(args) {
		// Values a JSON decoder never makes (a Go caller's []string, say)
		// go through JSON first, so the validator sees JSON types only.
		raw, err := json.Marshal(args)
		if err != nil {
			return shape.Error("", "the arguments are not valid JSON", "send a JSON object of arguments")
		}
		if inst, err = jsonschema.UnmarshalJSON(bytes.NewReader(raw)); err != nil {
			return shape.Error("", "the arguments are not valid JSON", "send a JSON object of arguments")
		}
	}
	err = s.Validate(inst)
	var verr *jsonschema.ValidationError
	if err == nil || !errors.As(err, &verr) {
		return nil
	}
	var leaves []*jsonschema.ValidationError
	collectLeaves(verr, &leaves)
	if len(leaves) == 0 {
		return shape.Error("", "the arguments do not match the tool's input schema", "check the tool's description")
	}
	var problems []shape.Problem
	for _, l := range leaves {
		problems = append(problems, describeLeaf(l))
	}
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].Field < problems[j].Field })
	first := problems[0]
	if len(problems) > 1 {
		var rest []string
		for _, p := range problems[1:] {
			rest = append(rest, p.Field+": "+p.Problem)
		}
		first.Problem += "; also " + strings.Join(rest, "; ")
	}
	return shape.Error(first.Field, first.Problem, first.Fix)
}

// decodedJSON reports whether v holds only what encoding/json decodes JSON
// into, as mcp-go's arguments do, which the validator takes as it is.
func decodedJSON(v any) bool {
	switch t := v.(type) {
	case nil, bool, string, json.Number:
		return true
	case float64:
		return !math.IsNaN(t) && !math.IsInf(t, 0) // JSON has neither
	case []any:
		for _, e := range t {
			if !decodedJSON(e) {
				return false
			}
		}
		return true
	case map[string]any:
		for _, e := range t {
			if !decodedJSON(e) {
				return false
			}
		}
		return true
	}
	return false
}

func collectLeaves(e *jsonschema.ValidationError, out *[]*jsonschema.ValidationError) {
	if len(e.Causes) == 0 {
		*out = append(*out, e)
		return
	}
	for _, c := range e.Causes {
		collectLeaves(c, out)
	}
}

// fieldName renders an instance location as the model wrote it:
// fields.author, operations[0].
func fieldName(loc []string) string {
	var b strings.Builder
	for _, seg := range loc {
		if _, err := strconv.Atoi(seg); err == nil && b.Len() > 0 {
			b.WriteString("[" + seg + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(seg)
	}
	return b.String()
}

// describeLeaf explains one violation using only what the schema says
// (names, limits, patterns, allowed values) and the JSON type of the value.
func describeLeaf(e *jsonschema.ValidationError) shape.Problem {
	field := fieldName(e.InstanceLocation)
	switch k := e.ErrorKind.(type) {
	case *kind.Required:
		return shape.Problem{Field: joinField(field, k.Missing[0]), Problem: "is required", Fix: "pass " + strings.Join(k.Missing, ", ")}
	case *kind.AdditionalProperties:
		return shape.Problem{Field: joinField(field, k.Properties[0]), Problem: "is not an argument of this tool", Fix: "remove it; the tool's input schema lists the arguments it takes"}
	case *kind.Type:
		return shape.Problem{Field: field, Problem: fmt.Sprintf("must be %s, not %s", strings.Join(k.Want, " or "), k.Got), Fix: "send a value of that type"}
	case *kind.Enum:
		want := make([]string, len(k.Want))
		for i, w := range k.Want {
			want[i] = fmt.Sprint(w)
		}
		return shape.Problem{Field: field, Problem: "is not one of the allowed values", Fix: "use one of: " + strings.Join(want, ", ")}
	case *kind.Pattern:
		return shape.Problem{Field: field, Problem: "does not have the expected shape", Fix: "match the pattern " + k.Want}
	case *kind.MinLength:
		return shape.Problem{Field: field, Problem: fmt.Sprintf("is shorter than %d characters", k.Want), Fix: "send a longer value"}
	case *kind.MaxLength:
		return shape.Problem{Field: field, Problem: fmt.Sprintf("is longer than %d characters", k.Want), Fix: "send a shorter value"}
	case *kind.Minimum:
		return shape.Problem{Field: field, Problem: "is below the minimum " + k.Want.FloatString(0), Fix: "send a larger number"}
	case *kind.Maximum:
		return shape.Problem{Field: field, Problem: "is above the maximum " + k.Want.FloatString(0), Fix: "send a smaller number"}
	case *kind.MinItems:
		return shape.Problem{Field: field, Problem: fmt.Sprintf("has fewer than %d items", k.Want), Fix: "send more items"}
	case *kind.MaxItems:
		return shape.Problem{Field: field, Problem: fmt.Sprintf("has more than %d items", k.Want), Fix: "send fewer items"}
	case *kind.UniqueItems:
		return shape.Problem{Field: field, Problem: "has duplicate items", Fix: "send each item once"}
	}
	return shape.Problem{Field: field, Problem: "is not valid (" + strings.Join(e.ErrorKind.KeywordPath(), "/") + ")", Fix: "check the tool's input schema"}
}

func joinField(base, name string) string {
	if base == "" {
		return name
	}
	return base + "." + name
}
