package keylist

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	got, err := Parse(" k1:AAEC , ,k2:AwQF")
	if err != nil || len(got) != 2 || got[0].ID != "k1" || string(got[0].Key) != "\x00\x01\x02" || got[1].ID != "k2" {
		t.Fatalf("Parse = %+v, %v", got, err)
	}
	for in, want := range map[string]string{
		"":                 "no key configured",
		"k1":               "entry 1: want kid:base64",
		"k1:AAEC,k2:%%%%%": `key "k2": not valid base64`,
	} {
		if _, err := Parse(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) error = %v, want %q", in, err, want)
		}
	}
	// Errors never carry key material.
	if _, err := Parse("k1:c2VjcmV0!"); err == nil || strings.Contains(err.Error(), "c2VjcmV0") {
		t.Errorf("error %v reveals the key", err)
	}
}
