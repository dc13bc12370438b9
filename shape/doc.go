// Package shape decides what a tool result looks like to the model: the
// sanitiser every provider's words pass through (Sanitize, OneLine,
// LineStart), the byte budget that bounds a result (Fit, PageItems,
// FitResult), a fast JSON encoder for decoded values (Marshal), content
// objects as the model sees them (Project, WholeObject, Summary), and the
// result envelopes themselves (OK, Error, Redact).
package shape
