package sources

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/logging"
)

// Environment variables of the adapter contract (see the package doc).
const (
	EnvSink            = "K_SINK"
	EnvAudience        = "K_AUDIENCE"
	EnvCEOverrides     = "K_CE_OVERRIDES"
	EnvSourceType      = "HERALD_SOURCE_TYPE"
	EnvSourceNamespace = "HERALD_SOURCE_NAMESPACE"
	EnvSourceName      = "HERALD_SOURCE_NAME"
	EnvSourceSpec      = "HERALD_SOURCE_SPEC"
	EnvWebhookSecret   = "HERALD_WEBHOOK_SECRET"
)

// Defaults of Config.
const (
	DefaultListen        = ":8080"
	DefaultMetricsListen = ":9090"
	DefaultMaxAttempts   = 5
	DefaultMaxBodyBytes  = 4 << 20
)

// Config is the validated configuration of one source adapter.
type Config struct {
	// Sink is the absolute http or https URL events are POSTed to.
	Sink string
	// Audience is the audience of the bearer token presented to Sink;
	// empty presents none.
	Audience string
	// ServiceAccount is the name of the ServiceAccount the source sends
	// as, in Namespace (AdapterServiceAccount), for a token source that
	// mints for several identities; a Pod's token source ignores it.
	ServiceAccount string
	// Extensions are set on every event (from K_CE_OVERRIDES).
	Extensions map[string]string
	// Type is ping, apiServer or webhook.
	Type v1alpha1.EventSourceType
	// Namespace and Name identify the EventSource.
	Namespace, Name string

	// Exactly the spec matching Type is set.
	Ping      *v1alpha1.PingSource
	APIServer *v1alpha1.APIServerSource
	Webhook   *v1alpha1.WebhookSource
	// WebhookSecret is the HMAC key of a webhook with a signature.
	WebhookSecret []byte

	// Listen is the address of the HTTP server (webhook requests, health).
	Listen string
	// MetricsListen is the address of /metrics, /healthz and /readyz.
	MetricsListen string
	// MaxAttempts is how often one event is tried; 0 means DefaultMaxAttempts.
	MaxAttempts int
	// MaxBodyBytes bounds a webhook request body; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// LogLevel is the minimum level logged.
	LogLevel slog.Level
}

// AdapterServiceAccount is the ServiceAccount an EventSource's adapter runs
// as and sends its events as: for an apiServer source spec.serviceAccountName
// (default "default"), for the others <name>-source, which the operator
// creates.
func AdapterServiceAccount(es *v1alpha1.EventSource) string {
	if a := es.Spec.APIServer; a != nil {
		if a.ServiceAccountName == "" {
			return "default"
		}
		return a.ServiceAccountName
	}
	return es.Name + "-source"
}

// SourcePath is the CloudEvents source of the EventSource namespace/name:
// /apis/eventing.herald.dev/v1alpha1/namespaces/<ns>/eventsources/<name>.
func SourcePath(namespace, name string) string {
	return "/apis/" + v1alpha1.GroupVersion.String() + "/namespaces/" + namespace + "/eventsources/" + name
}

// ParseConfig reads the adapter's flags from args; a contract flag not
// given takes its value from the environment variable getenv returns. The
// result is validated.
func ParseConfig(args []string, getenv func(string) string) (Config, error) {
	fs := flag.NewFlagSet("herald adapter", flag.ContinueOnError)
	var (
		sink, audience, overrides, typ, ns, name, spec, secret string
		cfg                                                    Config
		logFlags                                               logging.Flags
		err                                                    error
	)
	fromEnv := map[string]struct {
		dst *string
		env string
	}{
		"sink":             {&sink, EnvSink},
		"audience":         {&audience, EnvAudience},
		"ce-overrides":     {&overrides, EnvCEOverrides},
		"source-type":      {&typ, EnvSourceType},
		"source-namespace": {&ns, EnvSourceNamespace},
		"source-name":      {&name, EnvSourceName},
		"source-spec":      {&spec, EnvSourceSpec},
		"webhook-secret":   {&secret, EnvWebhookSecret},
	}
	fs.StringVar(&sink, "sink", "", "URL events are sent to (default $"+EnvSink+")")
	fs.StringVar(&audience, "audience", "", "audience of the token presented to the sink; empty presents none (default $"+EnvAudience+")")
	fs.StringVar(&overrides, "ce-overrides", "", `JSON {"extensions":{...}} set on every event (default $`+EnvCEOverrides+")")
	fs.StringVar(&typ, "source-type", "", "ping, apiServer or webhook (default $"+EnvSourceType+")")
	fs.StringVar(&ns, "source-namespace", "", "namespace of the EventSource (default $"+EnvSourceNamespace+")")
	fs.StringVar(&name, "source-name", "", "name of the EventSource (default $"+EnvSourceName+")")
	fs.StringVar(&spec, "source-spec", "", "JSON of the source's spec (default $"+EnvSourceSpec+")")
	fs.StringVar(&secret, "webhook-secret", "", "HMAC key of a signed webhook (default $"+EnvWebhookSecret+")")
	fs.StringVar(&cfg.Listen, "listen", DefaultListen, "address of the HTTP server (webhook requests, /healthz, /readyz)")
	fs.StringVar(&cfg.MetricsListen, "metrics-listen", DefaultMetricsListen, "address of /metrics, /healthz and /readyz")
	fs.IntVar(&cfg.MaxAttempts, "max-attempts", DefaultMaxAttempts, "send attempts per event")
	fs.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", DefaultMaxBodyBytes, "largest webhook request body; larger ones get 413")
	logFlags.BindFlags(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for flagName, v := range fromEnv {
		if !given[flagName] {
			*v.dst = getenv(v.env)
		}
	}
	if cfg.LogLevel, err = logFlags.Level(); err != nil {
		return Config{}, err
	}
	cfg.Sink, cfg.Audience = sink, audience
	cfg.Type = v1alpha1.EventSourceType(typ)
	cfg.Namespace, cfg.Name = ns, name
	cfg.WebhookSecret = []byte(secret)
	ext, err := ParseOverrides(overrides)
	if err != nil {
		return Config{}, err
	}
	cfg.Extensions = ext
	if err := cfg.setSpec(spec); err != nil {
		return Config{}, err
	}
	return cfg, cfg.Validate()
}

// setSpec decodes the JSON of the spec matching cfg.Type.
func (c *Config) setSpec(spec string) error {
	if strings.TrimSpace(spec) == "" {
		return fmt.Errorf("%s is empty: the source's spec is required", EnvSourceSpec)
	}
	var dst any
	switch c.Type {
	case v1alpha1.EventSourceTypePing:
		c.Ping = &v1alpha1.PingSource{}
		dst = c.Ping
	case v1alpha1.EventSourceTypeAPIServer:
		c.APIServer = &v1alpha1.APIServerSource{}
		dst = c.APIServer
	case v1alpha1.EventSourceTypeWebhook:
		c.Webhook = &v1alpha1.WebhookSource{}
		dst = c.Webhook
	default:
		return fmt.Errorf("%s %q: want ping, apiServer or webhook", EnvSourceType, c.Type)
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(spec)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return fmt.Errorf("decode %s for type %s: %w", EnvSourceSpec, c.Type, err)
	}
	return nil
}

// ConfigFor is the Config of EventSource es sending to sinkURI with a token
// for audience (none when empty), for running a source in-process (herald
// dev). secret is the webhook's HMAC key, if it has a signature. The result
// is validated.
func ConfigFor(es *v1alpha1.EventSource, sinkURI, audience string, secret []byte) (Config, error) {
	cfg := Config{
		Sink:           sinkURI,
		Audience:       audience,
		ServiceAccount: AdapterServiceAccount(es),
		Type:           es.Spec.Type(),
		Namespace:      es.Namespace,
		Name:           es.Name,
		Ping:           es.Spec.Ping,
		APIServer:      es.Spec.APIServer,
		Webhook:        es.Spec.Webhook,
		WebhookSecret:  secret,
		Listen:         DefaultListen,
		MetricsListen:  DefaultMetricsListen,
		MaxAttempts:    DefaultMaxAttempts,
		MaxBodyBytes:   DefaultMaxBodyBytes,
	}
	if o := es.Spec.CEOverrides; o != nil && len(o.Extensions) > 0 {
		cfg.Extensions = make(map[string]string, len(o.Extensions))
		for k, v := range o.Extensions {
			cfg.Extensions[k] = v
		}
	}
	return cfg, cfg.Validate()
}

// Validate checks that c is complete and consistent.
func (c *Config) Validate() error {
	var errs []error
	if u, err := url.Parse(c.Sink); c.Sink == "" {
		errs = append(errs, fmt.Errorf("%s is empty: the sink URL is required", EnvSink))
	} else if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("%s %q is not an absolute http(s) URL", EnvSink, c.Sink))
	}
	if c.Namespace == "" {
		errs = append(errs, fmt.Errorf("%s is empty", EnvSourceNamespace))
	}
	if c.Name == "" {
		errs = append(errs, fmt.Errorf("%s is empty", EnvSourceName))
	}
	if err := ValidateExtensions(c.Extensions); err != nil {
		errs = append(errs, err)
	}
	if c.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("max attempts %d is negative", c.MaxAttempts))
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("max body bytes %d is negative", c.MaxBodyBytes))
	}
	set := 0
	for _, p := range []bool{c.Ping != nil, c.APIServer != nil, c.Webhook != nil} {
		if p {
			set++
		}
	}
	if set > 1 {
		errs = append(errs, errors.New("more than one source spec is set"))
	}
	switch c.Type {
	case v1alpha1.EventSourceTypePing:
		if c.Ping == nil {
			errs = append(errs, errors.New("type ping without a ping spec"))
		} else if err := ValidatePing(c.Ping); err != nil {
			errs = append(errs, err)
		}
	case v1alpha1.EventSourceTypeAPIServer:
		if c.APIServer == nil {
			errs = append(errs, errors.New("type apiServer without an apiServer spec"))
		} else if err := ValidateAPIServer(c.APIServer); err != nil {
			errs = append(errs, err)
		}
	case v1alpha1.EventSourceTypeWebhook:
		if c.Webhook == nil {
			errs = append(errs, errors.New("type webhook without a webhook spec"))
		} else if err := validateWebhook(c.Webhook, c.WebhookSecret); err != nil {
			errs = append(errs, err)
		}
	default:
		errs = append(errs, fmt.Errorf("source type %q: want ping, apiServer or webhook", c.Type))
	}
	return errors.Join(errs...)
}

// ValidateAPIServer checks an apiServer spec without a cluster: resources
// present, apiVersions that parse, label selectors that convert, a known
// mode. Whether the kinds exist is RequiredAccess's (sources/apiserver) to say.
func ValidateAPIServer(s *v1alpha1.APIServerSource) error {
	if len(s.Resources) == 0 {
		return errors.New("apiServer: resources is empty")
	}
	for i, r := range s.Resources {
		if r.APIVersion == "" || r.Kind == "" {
			return fmt.Errorf("apiServer: resources[%d] needs apiVersion and kind", i)
		}
		if _, err := schema.ParseGroupVersion(r.APIVersion); err != nil {
			return fmt.Errorf("apiServer: resources[%d].apiVersion: %w", i, err)
		}
		if r.Selector != nil {
			if _, err := metav1.LabelSelectorAsSelector(r.Selector); err != nil {
				return fmt.Errorf("apiServer: resources[%d].selector: %w", i, err)
			}
		}
	}
	switch s.Mode {
	case "", v1alpha1.APIServerModeReference, v1alpha1.APIServerModeResource:
	default:
		return fmt.Errorf("apiServer: mode %q: want Reference or Resource", s.Mode)
	}
	return nil
}

// Overrides is the JSON of K_CE_OVERRIDES.
type Overrides struct {
	Extensions map[string]string `json:"extensions,omitempty"`
}

// ParseOverrides decodes K_CE_OVERRIDES; empty input means none.
func ParseOverrides(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var o Overrides
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return nil, fmt.Errorf("decode %s: %w", EnvCEOverrides, err)
	}
	return o.Extensions, ValidateExtensions(o.Extensions)
}

var extensionName = regexp.MustCompile(`^[a-z0-9]{1,20}$`)

// contextAttributes are the CloudEvents attributes overrides may not set.
var contextAttributes = map[string]bool{
	"specversion": true, "id": true, "source": true, "type": true, "subject": true, "time": true,
	"datacontenttype": true, "dataschema": true, "schemaurl": true, "datacontentencoding": true,
	"data": true, "data_base64": true,
}

// ValidateExtensions checks override names: 1 to 20 lower-case letters or
// digits, and no CloudEvents context attribute.
func ValidateExtensions(ext map[string]string) error {
	for k := range ext {
		if !extensionName.MatchString(k) {
			return fmt.Errorf("ceOverrides extension %q: names are 1 to 20 lower-case letters or digits", k)
		}
		if contextAttributes[k] {
			return fmt.Errorf("ceOverrides extension %q is a CloudEvents context attribute, not an extension", k)
		}
	}
	return nil
}
