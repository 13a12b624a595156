package logql

import "strconv"

func sprintf(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
