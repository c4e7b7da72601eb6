package dispatcher

import (
	"net/http"
	"testing"

	"github.com/herald-dev/herald/internal/ce"
	"github.com/herald-dev/herald/plan"
)

func storedHeader(t *testing.T, kv ...string) *eventView {
	t.Helper()
	h := http.Header{}
	h.Set("Ce-Specversion", "1.0")
	h.Set("Ce-Id", "1")
	h.Set("Ce-Source", "/shop/eu")
	h.Set("Ce-Type", "com.shop.order.created")
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	e, err := ce.DecodeBinary(h, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &eventView{h: e.Header()}
}

func TestFilters(t *testing.T) {
	t.Parallel()
	m := func(kv ...string) map[string]string {
		out := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	exact := func(kv ...string) plan.Filter { return plan.Filter{Exact: m(kv...)} }
	prefix := func(kv ...string) plan.Filter { return plan.Filter{Prefix: m(kv...)} }
	suffix := func(kv ...string) plan.Filter { return plan.Filter{Suffix: m(kv...)} }
	cesql := func(e string) plan.Filter { return plan.Filter{CESQL: e} }
	all := func(f ...plan.Filter) plan.Filter { return plan.Filter{All: f} }
	anyOf := func(f ...plan.Filter) plan.Filter { return plan.Filter{Any: f} }
	notF := func(f plan.Filter) plan.Filter { return plan.Filter{Not: &f} }

	base := []string{"Ce-Subject", "order-42", "Ce-Region", "eu west", "Ce-Count", "7", "Content-Type", "application/json"}
	tests := []struct {
		name    string
		filters []plan.Filter
		attrs   []string
		want    bool
	}{
		{"no filters", nil, nil, true},
		{"exact match", []plan.Filter{exact("type", "com.shop.order.created")}, nil, true},
		{"exact mismatch", []plan.Filter{exact("type", "com.shop.order")}, nil, false},
		{"exact is case-sensitive", []plan.Filter{exact("type", "COM.shop.order.created")}, nil, false},
		{"exact on missing attribute", []plan.Filter{exact("subject", "x")}, nil, false},
		{"exact several entries all hold", []plan.Filter{exact("type", "com.shop.order.created", "source", "/shop/eu")}, nil, true},
		{"exact several entries one fails", []plan.Filter{exact("type", "com.shop.order.created", "source", "/shop/us")}, nil, false},
		{"attribute name lower-cased", []plan.Filter{exact("Region", "eu west")}, base, true},
		{"decoded extension value", []plan.Filter{exact("region", "eu west")}, []string{"Ce-Region", "eu%20west"}, true},
		{"datacontenttype", []plan.Filter{exact("datacontenttype", "application/json")}, base, true},
		{"prefix", []plan.Filter{prefix("type", "com.shop.")}, nil, true},
		{"prefix mismatch", []plan.Filter{prefix("type", "org.")}, nil, false},
		{"empty prefix needs the attribute", []plan.Filter{prefix("subject", "")}, nil, false},
		{"suffix", []plan.Filter{suffix("type", ".created")}, nil, true},
		{"suffix mismatch", []plan.Filter{suffix("type", ".deleted")}, nil, false},
		{"several filters all must match", []plan.Filter{prefix("type", "com."), suffix("type", ".deleted")}, nil, false},
		{"all", []plan.Filter{all(prefix("type", "com."), suffix("source", "/eu"))}, nil, true},
		{"all one fails", []plan.Filter{all(prefix("type", "com."), suffix("source", "/us"))}, nil, false},
		{"any", []plan.Filter{anyOf(exact("type", "x"), exact("source", "/shop/eu"))}, nil, true},
		{"any none", []plan.Filter{anyOf(exact("type", "x"), exact("source", "y"))}, nil, false},
		{"not", []plan.Filter{notF(exact("type", "x"))}, nil, true},
		{"not of a match", []plan.Filter{notF(exact("type", "com.shop.order.created"))}, nil, false},
		{"nested four levels", []plan.Filter{all(anyOf(notF(exact("type", "x")), exact("type", "y")), notF(anyOf(exact("source", "a"), suffix("type", ".deleted"))))}, nil, true},
		{"cesql", []plan.Filter{cesql("type LIKE 'com.shop.%' AND EXISTS subject")}, base, true},
		{"cesql false", []plan.Filter{cesql("type LIKE 'org.%'")}, base, false},
		{"cesql extension as integer", []plan.Filter{cesql("count > 5")}, base, true},
		{"cesql extension decoded", []plan.Filter{cesql("region = 'eu west'")}, base, true},
		{"cesql missing attribute does not match", []plan.Filter{cesql("nope = 'x'")}, nil, false},
		{"cesql inside not", []plan.Filter{notF(cesql("subject = 'order-42'"))}, base, false},
		{"cesql specversion 0.3", []plan.Filter{cesql("specversion = '0.3'")}, []string{"Ce-Specversion", "0.3"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.filters {
				if err := tc.filters[i].Validate(); err != nil {
					t.Fatalf("test filter invalid: %v", err)
				}
			}
			mt, err := compileFilters(tc.filters)
			if err != nil {
				t.Fatal(err)
			}
			if got := mt.match(storedHeader(t, tc.attrs...)); got != tc.want {
				t.Errorf("match = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCompileFiltersRefusesBadCESQL(t *testing.T) {
	t.Parallel()
	if _, err := compileFilters([]plan.Filter{{CESQL: "type = "}}); err == nil {
		t.Error("compiled an invalid CESQL expression")
	}
}
