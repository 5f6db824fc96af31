package gateway

import (
	"fmt"
	"unicode/utf8"

	"github.com/grokgate/grokgate/apierror"
	"github.com/grokgate/grokgate/usage"
)

// checkModelName refuses a model name no model has: one with control
// characters (a NUL, which PostgreSQL cannot store), invalid UTF-8 (a lone
// surrogate escape), or longer than usage.MaxFieldBytes. It reaches the
// access log, the metrics and the usage ledger, so it is refused here,
// before it costs anything.
func checkModelName(model string) *apierror.Error {
	if len(model) > usage.MaxFieldBytes {
		return apierror.Invalid("model", fmt.Sprintf("Invalid value for 'model': %d bytes long; a model name is at most %d (such as \"grok-4.3\").", len(model), usage.MaxFieldBytes))
	}
	if !utf8.ValidString(model) {
		return apierror.Invalid("model", "Invalid value for 'model': it is not valid UTF-8 (an unpaired surrogate escape?); send a model name such as \"grok-4.3\".")
	}
	for _, c := range model {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			return apierror.Invalid("model", fmt.Sprintf("Invalid value for 'model': it contains the control character U+%04X; send a model name such as \"grok-4.3\".", c))
		}
	}
	return nil
}
