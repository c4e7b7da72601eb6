// Package contract checks CloudEvents against a Topic's contract
// (plan.Contract): the declared types, their JSON Schemas, content types and
// required extensions. Compile is the one place schemas are compiled: the
// compiler calls it to refuse a Topic whose schema does not compile, the
// dispatcher once per plan to check every event.
package contract

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"mime"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/herald-dev/herald/internal/ce"
	"github.com/herald-dev/herald/plan"
)

// Rules a Violation names besides the JSON Schema keywords (minimum,
// required, type, …), which name schema violations. With the keywords of
// the drafts they form a bounded set, fit for a metric label.
const (
	RuleUndeclaredType   = "undeclared_type"
	RuleMissingExtension = "missing_extension"
	RuleDataContentType  = "datacontenttype"
	RuleInvalidJSON      = "invalid_json"
)

// Checker checks events against one compiled contract. It is safe for
// concurrent use.
type Checker struct {
	enforce bool
	types   map[string]*eventType
}

type eventType struct {
	spec   plan.EventType
	schema *jsonschema.Schema
}

// Violation says why an event breaks the contract.
type Violation struct {
	// Type is the event's type; Declared whether the contract declares it.
	Type     string
	Declared bool
	// Rule is a JSON Schema keyword or one of the Rule constants.
	Rule string
	// Attribute names the culprit: "data", "type", "datacontenttype" or
	// an extension's name.
	Attribute string
	// Message says what is wrong, such as "/order/qty: must be >= 1".
	Message string
}

// Error is the message.
func (v *Violation) Error() string { return v.Message }

// Compile compiles every schema of c. An error names the type whose
// schema does not compile and carries the library's explanation.
func Compile(c *plan.Contract) (*Checker, error) {
	ch := &Checker{enforce: c.Mode == plan.ContractEnforce, types: make(map[string]*eventType, len(c.Types))}
	for _, t := range c.Types {
		et := &eventType{spec: t}
		if t.Schema != "" {
			s, err := CompileSchema(t.Schema)
			if err != nil {
				return nil, fmt.Errorf("event type %q: schema: %w", t.Type, err)
			}
			et.schema = s
		}
		ch.types[t.Type] = et
	}
	return ch, nil
}

// schemaURL is the location a contract's schema is compiled at; it only
// anchors references within the document.
const schemaURL = "herald:///schema.json"

// CompileSchema compiles one JSON Schema given as JSON text, draft 2020-12
// unless it names another in $schema. References to other documents are
// refused: nothing is read from files or the network.
func CompileSchema(text string) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(noLoader{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, err
	}
	s, err := c.Compile(schemaURL)
	if err != nil {
		// One line, for a condition message.
		msg := strings.ReplaceAll(err.Error(), schemaURL, "schema")
		return nil, errors.New(strings.Join(strings.Fields(strings.ReplaceAll(msg, "\n- ", "; ")), " "))
	}
	return s, nil
}

// noLoader refuses every document but the schema itself.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("%s: references reach only within the schema", url)
}

// Enforce reports whether violations refuse the event.
func (c *Checker) Enforce() bool { return c.enforce }

// Check returns why e breaks the contract, nil when it does not: its type is
// undeclared, it lacks a required extension, its datacontenttype is not
// the declared one or, for a type with a schema, not JSON, or its data does
// not satisfy the schema.
func (c *Checker) Check(e *ce.Event) *Violation {
	typ, _ := e.Get(ce.AttrType)
	et := c.types[typ]
	if et == nil {
		return &Violation{Type: typ, Rule: RuleUndeclaredType, Attribute: ce.AttrType,
			Message: fmt.Sprintf("type %q is not declared by the Topic's contract", typ)}
	}
	v := &Violation{Type: typ, Declared: true}
	for _, x := range et.spec.RequiredExtensions {
		if _, ok := e.Get(x); !ok {
			v.Rule, v.Attribute, v.Message = RuleMissingExtension, x, fmt.Sprintf("events of type %q must carry the extension %s", typ, x)
			return v
		}
	}
	if want := et.spec.DataContentType; want != "" && !sameMediaType(e.ContentType, want) {
		v.Rule, v.Attribute, v.Message = RuleDataContentType, ce.AttrDataContentType,
			fmt.Sprintf("events of type %q must have datacontenttype %s, not %q", typ, want, e.ContentType)
		return v
	}
	if et.schema == nil {
		return nil
	}
	if e.ContentType != "" && !isJSON(e.ContentType) {
		v.Rule, v.Attribute, v.Message = RuleDataContentType, ce.AttrDataContentType,
			fmt.Sprintf("events of type %q are checked against a JSON Schema: datacontenttype must be application/json or +json, not %q", typ, e.ContentType)
		return v
	}
	v.Attribute = "data"
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(e.Data))
	if err != nil {
		v.Rule, v.Message = RuleInvalidJSON, "data is not JSON: "+err.Error()
		return v
	}
	err = et.schema.Validate(inst)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		v.Rule, v.Message = "schema", err.Error()
		return v
	}
	leaf, n := firstLeaf(ve)
	v.Rule = keyword(leaf)
	v.Message = "/" + strings.Join(leaf.InstanceLocation, "/") + ": " + describe(leaf.ErrorKind)
	if n > 1 {
		v.Message += fmt.Sprintf(" (and %d more)", n-1)
	}
	return v
}

// firstLeaf returns the first most specific error under ve and how many
// such errors there are.
func firstLeaf(ve *jsonschema.ValidationError) (*jsonschema.ValidationError, int) {
	if len(ve.Causes) == 0 {
		return ve, 1
	}
	var first *jsonschema.ValidationError
	n := 0
	for _, c := range ve.Causes {
		l, m := firstLeaf(c)
		if first == nil {
			first = l
		}
		n += m
	}
	return first, n
}

// keyword is the schema keyword a leaf error failed.
func keyword(ve *jsonschema.ValidationError) string {
	p := ve.ErrorKind.KeywordPath()
	if len(p) == 0 {
		return "schema"
	}
	return p[0]
}

var printer = message.NewPrinter(language.English)

// describe says what a failed keyword wants, in a few words.
func describe(k jsonschema.ErrorKind) string {
	switch k := k.(type) {
	case *kind.Minimum:
		return "must be >= " + ratString(k.Want)
	case *kind.Maximum:
		return "must be <= " + ratString(k.Want)
	case *kind.ExclusiveMinimum:
		return "must be > " + ratString(k.Want)
	case *kind.ExclusiveMaximum:
		return "must be < " + ratString(k.Want)
	case *kind.Required:
		return "missing property " + strings.Join(quoteAll(k.Missing), ", ")
	case *kind.Type:
		return fmt.Sprintf("must be %s, not %s", strings.Join(k.Want, " or "), k.Got)
	case *kind.MinLength:
		return fmt.Sprintf("must be at least %d characters long", k.Want)
	case *kind.MaxLength:
		return fmt.Sprintf("must be at most %d characters long", k.Want)
	case *kind.Enum:
		return "must be one of the enum's values"
	}
	return k.LocalizedString(printer)
}

func ratString(r *big.Rat) string {
	if r.IsInt() {
		return r.Num().String()
	}
	f, _ := r.Float64()
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = strconv.Quote(v)
	}
	return out
}

// isJSON reports whether a datacontenttype says the data is JSON.
func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

// sameMediaType compares two media types, parameters ignored.
func sameMediaType(got, want string) bool {
	g, _, err1 := mime.ParseMediaType(got)
	w, _, err2 := mime.ParseMediaType(want)
	return err1 == nil && err2 == nil && g == w
}
