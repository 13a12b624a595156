package main

import "testing"

func TestParseRSS(t *testing.T) {
	for _, tc := range []struct {
		name       string
		status     string
		anon, file int64
	}{
		{"linux", "Name:\tsprout\nVmHWM:\t  204800 kB\nVmRSS:\t  190000 kB\nRssAnon:\t  120000 kB\nRssFile:\t   70000 kB\nRssShmem:\t       0 kB\n", 120000 << 10, 70000 << 10},
		{"no trailing newline", "RssFile:\t 12 kB\nRssAnon:\t 34 kB", 34 << 10, 12 << 10},
		{"missing fields", "Name:\tx\nVmRSS:\t 5 kB\n", 0, 0},
		{"garbage value", "RssAnon:\t lots kB\nRssFile:\t -3 kB\n", 0, 0},
		{"empty", "", 0, 0},
		{"key as prefix only", "RssAnonX:\t 9 kB\n", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			anon, file := parseRSS([]byte(tc.status))
			if anon != tc.anon || file != tc.file {
				t.Errorf("parseRSS = %d, %d; want %d, %d", anon, file, tc.anon, tc.file)
			}
		})
	}
}
