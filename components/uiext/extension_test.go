package uiext

import "testing"

func TestUIURL(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"127.0.0.1:3200", "http://localhost:3200/ui/"},
		{"[::1]:3200", "http://localhost:3200/ui/"},
		{"0.0.0.0:3200", "http://localhost:3200/ui/"},
		{"[::]:8080", "http://localhost:8080/ui/"},
		{"10.1.2.3:3200", "http://10.1.2.3:3200/ui/"},
		{"[fd00::1]:3200", "http://[fd00::1]:3200/ui/"},
		{"", ""},
		{"nonsense", ""},
	} {
		if got := uiURL(tc.addr); got != tc.want {
			t.Errorf("uiURL(%q) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}
