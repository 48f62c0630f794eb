package warehouse

import "testing"

func TestParseServerVersion(t *testing.T) {
	f := func(s string, want ServerVersion) {
		t.Helper()
		got, err := ParseServerVersion(s)
		if err != nil {
			t.Fatalf("ParseServerVersion(%q): unexpected error: %v", s, err)
		}
		if got != want {
			t.Fatalf("ParseServerVersion(%q) = %v, want %v", s, got, want)
		}
	}
	f("18.16.1", ServerVersion{18, 16, 1})
	f("24.3.1.2672", ServerVersion{24, 3, 1})
	f("25.8.1.1-lts", ServerVersion{25, 8, 1})
	f(" 20.1 ", ServerVersion{20, 1, 0})
	f("21", ServerVersion{21, 0, 0})
}

func TestParseServerVersionRejects(t *testing.T) {
	f := func(s string) {
		t.Helper()
		if v, err := ParseServerVersion(s); err == nil {
			t.Fatalf("ParseServerVersion(%q) = %v, want an error", s, v)
		}
	}
	f("")
	f("x.y")
	f("18..1")
	f("1.2.3.4.5")
	f("-1.2")
}

func TestServerVersionAtLeast(t *testing.T) {
	f := func(v, o string, want bool) {
		t.Helper()
		a, _ := ParseServerVersion(v)
		b, _ := ParseServerVersion(o)
		if got := a.AtLeast(b); got != want {
			t.Fatalf("%s.AtLeast(%s) = %v, want %v", v, o, got, want)
		}
	}
	f("18.16.1", "20.1", false)
	f("20.1.0", "20.1", true)
	f("20.1.2", "20.1.3", false)
	f("19.17.9", "20.1", false)
	f("24.3.1", "20.1", true)
	f("18.16.1", "18.16.1", true)
	f("18.16.1", "18.14", true)
}
