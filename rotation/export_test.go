package rotation

// SetWriteFile replaces how the engine writes its journal and pending file.
func SetWriteFile(e *Engine, f func(path string, v any) error) { e.writeFileFunc = f }

// SetProbe replaces the engine's write probe.
func SetProbe(e *Engine, f func(dir string, size int) error) { e.probeFunc = f }

// WriteJSONFile is the real journal writer, for tests that wrap it.
var WriteJSONFile = writeJSONFile

// FileJournals is the engine's default Journals: files and flocks in Dir.
func FileJournals(e *Engine) Journals { return fileJournals{e: e} }
