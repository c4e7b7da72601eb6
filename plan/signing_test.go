package plan_test

import (
	"strings"
	"testing"

	"github.com/herald-dev/herald/plan"
)

func TestParseSigningKey(t *testing.T) {
	key32 := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	for _, tc := range []struct {
		in      string
		wantLen int
		wantErr string
	}{
		{"whsec_" + key32, 32, ""},
		{key32 + "\n", 32, ""},
		{"whsec_c2hvcnQ=", 0, "signing key is 5 bytes, want 24 to 64"},
		{"whsec_not base64!", 0, "not base64"},
		{"", 0, "signing key is empty"},
	} {
		k, err := plan.ParseSigningKey(tc.in)
		if tc.wantErr == "" && (err != nil || len(k) != tc.wantLen) {
			t.Errorf("%q: %d bytes, %v; want %d", tc.in, len(k), err, tc.wantLen)
		}
		if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.wantErr)
		}
	}
}
