package packaging_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/dispatcher"
	"github.com/herald-dev/herald/plan"
	"github.com/herald-dev/herald/provision"
)

// chartNATS is nats-server run from the chart's rendered configuration,
// with the environment its StatefulSet gives it and the TLS files of the
// Secret it mounts.
type chartNATS struct {
	srv *server.Server
	// url is the client URL over TLS.
	url string
	// caFile holds ca.crt of the manager's Secret.
	caFile string
	// logins are the NATS Secrets of the manager and the dispatchers by
	// role ("manager", "dispatcher"): username, password, ca.crt.
	logins map[string]map[string]string
}

// secretData returns the decoded data of the rendered Secret name.
func secretData(t *testing.T, r *rendered, name string) map[string]string {
	t.Helper()
	var s corev1.Secret
	mustConvert(t, r.objs, "Secret", name, &s)
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	for k, v := range s.StringData {
		out[k] = v
	}
	return out
}

// chartNATSOptions parses the rendered nats.conf as the StatefulSet's
// first pod would: with the container's environment (Secret references
// resolved from the rendered Secrets) and the files of its Secret volumes,
// written to temporary directories that stand in for their mount paths.
func chartNATSOptions(t *testing.T, r *rendered) *server.Options {
	t.Helper()
	conf := natsConf(t, r.objs, "herald-nats-config")
	sts := statefulSet(t, r.objs, "herald-nats")
	pod := sts.Spec.Template.Spec
	c := pod.Containers[0]
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			val, ok := secretData(t, r, ref.Name)[ref.Key]
			if !ok {
				t.Fatalf("env %s: Secret %s has no key %s", e.Name, ref.Name, ref.Key)
			}
			t.Setenv(e.Name, val)
		case e.ValueFrom == nil:
			t.Setenv(e.Name, e.Value)
		}
	}
	volumes := map[string]corev1.Volume{}
	for _, vol := range pod.Volumes {
		volumes[vol.Name] = vol
	}
	for _, m := range c.VolumeMounts {
		vol := volumes[m.Name]
		if vol.Secret == nil {
			continue
		}
		dir := t.TempDir()
		data := secretData(t, r, vol.Secret.SecretName)
		for _, it := range vol.Secret.Items {
			if err := os.WriteFile(filepath.Join(dir, it.Path), []byte(data[it.Key]), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		conf = strings.ReplaceAll(conf, m.MountPath+"/", dir+"/")
	}
	return processNATSConf(t, conf)
}

// startChartNATS renders the chart with v and starts nats-server from its
// configuration (chartNATSOptions). Only the listen ports (free ones on
// loopback) and the store directory (a temporary one) differ.
func startChartNATS(t *testing.T, v valueSet) *chartNATS {
	t.Helper()
	r := mustRender(t, v, "herald-system")
	o := chartNATSOptions(t, r)
	o.Host, o.Port = "127.0.0.1", -1
	o.HTTPHost, o.HTTPPort = "127.0.0.1", -1
	o.StoreDir = t.TempDir()
	o.NoSigs = true
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	n := &chartNATS{srv: s, url: fmt.Sprintf("tls://%s", s.Addr()), logins: map[string]map[string]string{}}
	for _, role := range []string{"manager", "dispatcher"} {
		n.logins[role] = secretData(t, r, "herald-nats-"+role)
	}
	n.caFile = filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(n.caFile, []byte(n.logins["manager"]["ca.crt"]), 0o600); err != nil {
		t.Fatal(err)
	}
	return n
}

// connect logs in as role with the password and CA of its Secret, the way
// the herald binary does with --nats-user, --nats-password-file and
// --nats-tls-ca; extra options follow.
func (n *chartNATS) connect(t *testing.T, role string, extra ...nats.Option) *nats.Conn {
	t.Helper()
	l := n.logins[role]
	opts := append([]nats.Option{nats.UserInfo(l["username"], l["password"]), nats.RootCAs(n.caFile)}, extra...)
	nc, err := nats.Connect(n.url, opts...)
	if err != nil {
		t.Fatalf("log in as %s: %v", role, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestNATSChartUsers runs the bundled NATS as the chart configures it: the
// operator's user provisions a Topic, a dispatcher logged in as the
// dispatchers' user serves its ingress and deliveries (publish, pull, ack,
// dead-letter counter, plan watch), and the server refuses the dispatcher
// every change to streams and Topic consumers, and refuses clients without
// credentials or without TLS.
func TestNATSChartUsers(t *testing.T) {
	n := startChartNATS(t, defaultValues)
	for _, role := range []string{"manager", "dispatcher"} {
		if n.logins[role]["username"] != "herald-"+role || len(n.logins[role]["password"]) < 32 || n.logins[role]["ca.crt"] == "" {
			t.Fatalf("Secret herald-nats-%s: want username herald-%s, a generated password and ca.crt", role, role)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The operator's path: plan bucket, counter stream, the Topic's stream,
	// consumers and plan.
	mgr := n.connect(t, "manager")
	mjs, err := jetstream.New(mgr)
	if err != nil {
		t.Fatal(err)
	}
	prov, err := provision.New(ctx, mjs, 1)
	if err != nil {
		t.Fatalf("the manager's user cannot create the plan and shares buckets and counter stream: %v", err)
	}
	var mu sync.Mutex
	var got []string
	sub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Ce-Id"))
		mu.Unlock()
		if r.Header.Get("Ce-Type") == "com.example.refused" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer sub.Close()
	deadLetters := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	}))
	defer deadLetters.Close()
	topic := &v1alpha1.Topic{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders", Generation: 1},
		Spec: v1alpha1.TopicSpec{History: &v1alpha1.TopicHistory{Enabled: true}}}
	retry := int32(0)
	subs := []compiler.ResolvedSubscription{
		{Subscription: &v1alpha1.Subscription{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "audit", Generation: 1},
			Spec:       v1alpha1.SubscriptionSpec{Topic: "orders", Delivery: &v1alpha1.DeliverySpec{Retry: &retry}},
		}, SubscriberURI: sub.URL, DeadLetterURI: deadLetters.URL},
		{Subscription: &v1alpha1.Subscription{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "ledger", Generation: 1},
			Spec:       v1alpha1.SubscriptionSpec{Topic: "orders", Ordering: v1alpha1.OrderingOrdered},
		}, SubscriberURI: sub.URL},
	}
	res, err := compiler.Compile(topic, subs)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := prov.Apply(ctx, res)
	if err == nil {
		err = rep.Err()
	}
	if err != nil {
		t.Fatalf("the manager's user cannot provision a Topic: %v", err)
	}

	// A real dispatcher as the dispatchers' user.
	dnc := n.connect(t, "dispatcher")
	d, err := dispatcher.New(dnc, dispatcher.Options{Topics: []string{"shop/orders"}})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	defer func() { stop(); <-done }()
	ingress := httptest.NewServer(d)
	defer ingress.Close()
	waitFor(t, func() bool { return d.Ready() == nil }, "the dispatcher loads its plan")
	// The dispatchers' user writes and watches its share of the unordered
	// Subscription's limits, so that replicas split them.
	shares, err := mjs.KeyValue(ctx, plan.SharesBucket)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		keys, err := shares.ListKeysFiltered(ctx, plan.ShareKeys(res.Stream.Name, res.Consumers["audit"].Durable))
		if err != nil {
			return false
		}
		n := 0
		for range keys.Keys() {
			n++
		}
		return n == 1
	}, "the dispatcher's share of the audit Subscription's limits in %s", plan.SharesBucket)
	djs, err := jetstream.New(dnc)
	if err != nil {
		t.Fatal(err)
	}
	dkv, err := djs.KeyValue(ctx, plan.SharesBucket)
	if err != nil {
		t.Fatalf("the dispatchers' user cannot look up %s: %v", plan.SharesBucket, err)
	}
	probe := plan.ShareKey(res.Stream.Name, "sub_probe", "packaging")
	if _, err := dkv.Put(ctx, probe, []byte(`{"inFlight":0}`)); err != nil {
		t.Errorf("the dispatchers' user cannot write a share: %v", err)
	}
	if _, err := dkv.Get(ctx, probe); err != nil {
		t.Errorf("the dispatchers' user cannot read a share: %v", err)
	}
	if err := dkv.Delete(ctx, probe); err != nil {
		t.Errorf("the dispatchers' user cannot delete its share: %v", err)
	}

	post := func(id, typ string, extra ...string) {
		t.Helper()
		for {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ingress.URL+"/shop/orders", strings.NewReader("{}"))
			for i := 0; i+1 < len(extra); i += 2 {
				req.Header.Set(extra[i], extra[i+1])
			}
			req.Header.Set("Ce-Specversion", "1.0")
			req.Header.Set("Ce-Id", id)
			req.Header.Set("Ce-Type", typ)
			req.Header.Set("Ce-Source", "/packaging")
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusAccepted {
				return
			}
			// 404 until the plan reached the ingress.
			if resp.StatusCode != http.StatusNotFound || ctx.Err() != nil {
				t.Fatalf("POST %s: %s %s", id, resp.Status, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	post("e1", "com.example.ok")
	post("e2", "com.example.refused")
	// e1 reaches both Subscriptions, e2 both too (audit dead-letters it).
	count := func(id string) int {
		mu.Lock()
		defer mu.Unlock()
		c := 0
		for _, g := range got {
			if g == id {
				c++
			}
		}
		return c
	}
	// A delayed event: its schedule is published by the dispatchers' user.
	post("e3", "com.example.ok", "Ce-Deliverafter", "PT1S")
	// An urgent event, stored on the Topic's high lane.
	post("e4", "com.example.ok", "Ce-Priority", "high")
	waitFor(t, func() bool { return count("e1") == 2 && count("e2") == 2 && count("e3") == 2 && count("e4") == 2 }, "the events delivered to both Subscriptions")
	// The delivery history, written by the dispatchers' user: one record
	// per Subscription and event at least.
	waitFor(t, func() bool {
		info, err := prov.StreamInfo(ctx, plan.HistoryStream("shop", "orders"))
		return err == nil && info != nil && info.State.Msgs >= 8
	}, "the delivery history of the four events")
	waitFor(t, func() bool {
		n, _, err := prov.DeadLetterCount(ctx, "shop", "orders", "audit")
		return err == nil && n == 1
	}, "the dead letter counted")
	for _, c := range res.Consumers {
		waitFor(t, func() bool {
			info, err := prov.ConsumerInfo(ctx, res.Stream.Name, c.Durable)
			return err == nil && info != nil && info.NumAckPending == 0 && info.NumPending == 0
		}, "consumer %s acked everything", c.Durable)
	}

	// What the dispatchers' user must not do: the server refuses it with a
	// permission violation, and the objects stay as they were.
	violations := make(chan error, 16)
	bad := n.connect(t, "dispatcher", nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			select {
			case violations <- err:
			default:
			}
		}
	}))
	bjs, err := jetstream.New(bad)
	if err != nil {
		t.Fatal(err)
	}
	stream, consumer := res.Stream.Name, res.Consumers["audit"].Durable
	updated := res.Stream
	updated.MaxMsgs = 1
	refusals := []struct {
		name    string
		subject string
		do      func(ctx context.Context) error
	}{
		{"delete a stream", "$JS.API.STREAM.DELETE." + stream, func(ctx context.Context) error { return bjs.DeleteStream(ctx, stream) }},
		{"create a stream", "$JS.API.STREAM.CREATE.rogue", func(ctx context.Context) error {
			_, err := bjs.CreateStream(ctx, jetstream.StreamConfig{Name: "rogue", Subjects: []string{"rogue.>"}})
			return err
		}},
		{"update a stream", "$JS.API.STREAM.UPDATE." + stream, func(ctx context.Context) error {
			_, err := bjs.UpdateStream(ctx, updated)
			return err
		}},
		{"purge a stream", "$JS.API.STREAM.PURGE." + stream, func(ctx context.Context) error {
			s, err := bjs.Stream(ctx, stream)
			if err != nil {
				return err
			}
			return s.Purge(ctx)
		}},
		{"delete a consumer", "$JS.API.CONSUMER.DELETE." + stream + "." + consumer, func(ctx context.Context) error {
			return bjs.DeleteConsumer(ctx, stream, consumer)
		}},
		{"create a consumer", "$JS.API.CONSUMER.CREATE." + stream, func(ctx context.Context) error {
			_, err := bjs.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: "rogue", AckPolicy: jetstream.AckExplicitPolicy})
			return err
		}},
		{"delete the plan bucket", "$JS.API.STREAM.DELETE.KV_" + plan.KVBucket, func(ctx context.Context) error {
			return bjs.DeleteKeyValue(ctx, plan.KVBucket)
		}},
		{"delete the shares bucket", "$JS.API.STREAM.DELETE.KV_" + plan.SharesBucket, func(ctx context.Context) error {
			return bjs.DeleteKeyValue(ctx, plan.SharesBucket)
		}},
		{"purge the shares bucket", "$JS.API.STREAM.PURGE.KV_" + plan.SharesBucket, func(ctx context.Context) error {
			_, err := bad.Request("$JS.API.STREAM.PURGE.KV_"+plan.SharesBucket, nil, 2*time.Second)
			return err
		}},
		{"write a plan", "$KV." + plan.KVBucket + ".", func(ctx context.Context) error {
			_, err := bad.Request("$KV."+plan.KVBucket+".rogue", []byte("{}"), 2*time.Second)
			return err
		}},
	}
	for _, r := range refusals {
		t.Run("dispatcher may not "+r.name, func(t *testing.T) {
			for len(violations) > 0 {
				<-violations
			}
			rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
			defer rcancel()
			if err := r.do(rctx); err == nil {
				t.Fatalf("the server let the dispatchers' user %s", r.name)
			}
			select {
			case err := <-violations:
				if !strings.Contains(err.Error(), r.subject) {
					t.Errorf("permission violation %q, want one for %s", err, r.subject)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("no permission violation from the server")
			}
		})
	}
	if info, err := prov.StreamInfo(ctx, stream); err != nil || info == nil || info.State.Msgs != 4 || info.Config.MaxMsgs == 1 {
		t.Errorf("the Topic's stream after the refusals: %+v, %v; want it unchanged with its 4 events", info, err)
	}
	if info, err := prov.ConsumerInfo(ctx, stream, consumer); err != nil || info == nil {
		t.Errorf("consumer %s after the refusals: %v", consumer, err)
	}

	t.Run("no credentials", func(t *testing.T) {
		nc, err := nats.Connect(n.url, nats.RootCAs(n.caFile))
		if err == nil {
			nc.Close()
			t.Fatal("the server accepted a client without credentials")
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("error %v, want an authorization violation", err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		nc, err := nats.Connect(n.url, nats.RootCAs(n.caFile), nats.UserInfo("herald-manager", n.logins["dispatcher"]["password"]))
		if err == nil {
			nc.Close()
			t.Fatal("the server accepted the manager's user with the dispatchers' password")
		}
	})
	t.Run("no TLS", func(t *testing.T) {
		// The manager's valid login, sent in the clear, is not answered.
		conn, err := net.DialTimeout("tcp", n.srv.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(conn)
		info, err := br.ReadString('\n')
		if err != nil || !strings.Contains(info, `"tls_required":true`) {
			t.Fatalf("INFO %q (%v): want tls_required", info, err)
		}
		l := n.logins["manager"]
		fmt.Fprintf(conn, "CONNECT {\"verbose\":false,\"user\":%q,\"pass\":%q}\r\nPING\r\n", l["username"], l["password"])
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return // closed by the server
			}
			if strings.HasPrefix(line, "PONG") {
				t.Fatal("the server answered a client that does not speak TLS")
			}
		}
	})
}

// waitFor polls cond until it holds, failing the test after a minute.
func waitFor(t *testing.T, cond func() bool, what string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: "+what, args...)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
