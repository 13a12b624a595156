package tracestore

import "go.opentelemetry.io/collector/config/configopaque"

func configopaqueString(s string) configopaque.String { return configopaque.String(s) }

// blockList is the instance's blocks now (tests only: queries take a view).
func (in *instance) blockList() []*block {
	in.mu.RLock()
	defer in.mu.RUnlock()
	return append([]*block(nil), in.blocks...)
}
