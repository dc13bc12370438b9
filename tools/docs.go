package tools

import (
	"fmt"
	"strings"
)

// MarkdownTable is the README's table of tools, made from the definitions
// themselves so it cannot drift from what the server offers (a test in this
// package compares the README with it).
func MarkdownTable(served []ServerTool) string {
	var b strings.Builder
	b.WriteString("| Tool | Needs | Read-only / destructive / idempotent / open-world | What it does |\n|---|---|---|---|\n")
	yn := func(v *bool) string {
		if v != nil && *v {
			return "yes"
		}
		return "no"
	}
	for _, t := range served {
		needs := "–"
		if t.Needs != "" {
			needs = "`" + string(t.Needs) + "`"
		}
		a := t.Tool.Annotations
		fmt.Fprintf(&b, "| `%s` | %s | %s / %s / %s / %s | %s |\n", t.Tool.Name, needs,
			yn(a.ReadOnlyHint), yn(a.DestructiveHint), yn(a.IdempotentHint), yn(a.OpenWorldHint),
			strings.ReplaceAll(t.Tool.Description, "|", `\|`))
	}
	return b.String()
}
