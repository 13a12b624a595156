package tracestore

import "go.opentelemetry.io/collector/config/configopaque"

func configopaqueString(s string) configopaque.String { return configopaque.String(s) }
