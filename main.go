// Command keygate is an MCP server that gives AI agents scoped access to
// content and credentials, over stdio or streamable HTTP. The command tree
// is in package cli, the server it builds in package app.
package main

import (
	"os"

	"github.com/keygate/keygate/cli"
)

// version is set at build time with -ldflags "-X main.version=..."; without
// it, keygate reports the module version the Go toolchain recorded.
var version = ""

func main() { os.Exit(cli.Main(version)) }
