package logstore

import "runtime"

func goVersion() string { return runtime.Version() }
