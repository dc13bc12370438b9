package rotation

import "github.com/keygate/keygate/auth"

// Seams for the external tests: the file-system failures they need cannot
// be produced for real without root or a special file system.

func SetWriteEnv(e *Engine, f func(path, name, value string, opts auth.EnvWriteOptions) error) {
	e.writeEnvFunc = f
}

func SetWriteFile(e *Engine, f func(path string, v any) error) { e.writeFileFunc = f }

func SetProbe(e *Engine, f func(dir string, size int) error) { e.probeFunc = f }

// WriteJSONFile is the real journal writer, for tests that wrap it.
var WriteJSONFile = writeJSONFile
