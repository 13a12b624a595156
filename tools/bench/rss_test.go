package main

import (
	"fmt"
	"testing"
)

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

// FuzzParseRSS: any text gives two non-negative sizes, and the fields it finds are read as written.
func FuzzParseRSS(f *testing.F) {
	f.Add("RssAnon:\t  120000 kB\nRssFile:\t   70000 kB\n", int64(5), int64(7))
	f.Add("Name:\tx\nRssAnon:", int64(0), int64(1))
	f.Fuzz(func(t *testing.T, noise string, anonKB, fileKB int64) {
		anon, file := parseRSS([]byte(noise))
		if anon < 0 || file < 0 {
			t.Fatalf("negative sizes %d, %d from %q", anon, file, noise)
		}
		if anonKB < 0 || fileKB < 0 || anonKB > 1<<40 || fileKB > 1<<40 {
			return
		}
		status := fmt.Sprintf("Name:\tsprout\nRssAnon:\t%d kB\nRssFile:\t%d kB\n", anonKB, fileKB)
		if a, fl := parseRSS([]byte(status)); a != anonKB<<10 || fl != fileKB<<10 {
			t.Fatalf("parseRSS(%q) = %d, %d", status, a, fl)
		}
	})
}
