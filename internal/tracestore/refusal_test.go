package tracestore

import "github.com/sprout-otel/sprout/internal/refusal"

// permanent reports whether err is a refusal that retrying cannot fix (the pipelines must not retry it).
func permanent(err error) bool {
	ref, ok := refusal.As(err)
	return ok && !ref.Retryable()
}
