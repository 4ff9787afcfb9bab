// Command crosslang-go-load sends ListDevices at a steady rate through ONE
// grpc-go ClientConn to a static list of adapter replicas, configured the way
// docs/load-balancing.md tells clients to be (round_robin, client-side health
// checking, a retry policy for UNAVAILABLE), and reports what every call ended
// with. tests/coordination/test_rolling_restart_go.py runs it while it
// restarts each replica in turn.
//
//	crosslang-go-load --targets 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 \
//	    --rate 100 --duration 60s
//
// It runs for --duration or until SIGTERM/SIGINT, then stops issuing calls,
// waits for those in flight and exits 0. Stdout is JSON lines: a "progress"
// line every --progress-ms (the counts so far, so a test can follow the load
// while it runs) and, last, one "summary" line. The schedule is open-loop
// (call i is due at start + i/rate whatever earlier calls are doing), so a
// slow or stuck replica shows up as failures or latency, not as a lower rate.
// Something that keeps it from running at all goes to stderr with exit 1.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // registers the client side of healthCheckConfig
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	openframev1 "meshadapter.test/crosslang/gen/openframe/v1"
)

// serviceConfig is docs/load-balancing.md's, verbatim.
const serviceConfig = `{
  "loadBalancingConfig": [{"round_robin": {}}],
  "healthCheckConfig": {"serviceName": ""},
  "methodConfig": [{
    "name": [{}],
    "retryPolicy": {
      "maxAttempts": 3, "initialBackoff": "0.05s", "maxBackoff": "0.5s",
      "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}`

const method = "/openframe.v1.DeviceService/ListDevices"

func main() {
	os.Exit(run())
}

func run() int {
	targets := flag.String("targets", "", "comma-separated replica addresses, host:port (required)")
	rate := flag.Float64("rate", 100, "calls per second")
	duration := flag.Duration("duration", time.Minute, "how long to send calls (SIGTERM/SIGINT ends sooner)")
	timeoutMs := flag.Int("timeout-ms", 5000, "deadline of each call, in milliseconds")
	progressMs := flag.Int("progress-ms", 250, "interval of progress lines, in milliseconds")
	flag.Parse()
	addrs := splitTargets(*targets)
	if len(addrs) == 0 || *rate <= 0 || flag.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "usage: %s --targets HOST:PORT[,HOST:PORT...] [--rate N] [--duration D]\n", os.Args[0])
		flag.PrintDefaults()
		return 2
	}

	// A static list through the manual resolver: one endpoint per replica, no DNS.
	endpoints := make([]resolver.Endpoint, len(addrs))
	for i, a := range addrs {
		endpoints[i] = resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}}
	}
	static := manual.NewBuilderWithScheme("replicas")
	static.InitialState(resolver.State{Endpoints: endpoints})
	tally := newTally(addrs)
	conn, err := grpc.NewClient(static.Scheme()+":///adapter",
		grpc.WithResolvers(static),
		grpc.WithDefaultServiceConfig(serviceConfig),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(&attemptCounter{tally: tally}),
	)
	if err != nil {
		fmt.Fprintf(os.Stderr, "load: client for %v: %v\n", addrs, err)
		return 1
	}
	defer conn.Close()
	client := openframev1.NewDeviceServiceClient(conn)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()

	out := json.NewEncoder(os.Stdout)
	var outMu sync.Mutex
	emit := func(v any) {
		outMu.Lock()
		defer outMu.Unlock()
		_ = out.Encode(v)
	}

	start := time.Now()
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		ticker := time.NewTicker(time.Duration(*progressMs) * time.Millisecond)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
				emit(tally.progress(time.Since(start)))
			}
		}
	}()

	interval := time.Duration(float64(time.Second) / *rate)
	timeout := time.Duration(*timeoutMs) * time.Millisecond
	var inFlight sync.WaitGroup
	issued := 0
	var maxLag time.Duration
	for {
		due := start.Add(time.Duration(issued) * interval)
		if wait := time.Until(due); wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
			case <-timer.C:
			}
		}
		if ctx.Err() != nil {
			break
		}
		if lag := time.Since(due); lag > maxLag {
			maxLag = lag
		}
		issued++
		inFlight.Add(1)
		go func() {
			defer inFlight.Done()
			// Not derived from ctx: a call issued before the end runs to its own deadline.
			callCtx, cancelCall := context.WithTimeout(context.Background(), timeout)
			defer cancelCall()
			var served peer.Peer
			began := time.Now()
			_, err := client.ListDevices(callCtx, &openframev1.ListDevicesRequest{PageSize: 1}, grpc.Peer(&served))
			tally.call(time.Since(began), served.Addr, err)
		}()
	}
	elapsed := time.Since(start)
	inFlight.Wait()
	<-progressDone
	emit(tally.summary(elapsed, *rate, issued, maxLag, addrs))
	return 0
}

func splitTargets(s string) []string {
	var addrs []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	return addrs
}

// tally counts what calls and their attempts ended with; safe for concurrent use.
type tally struct {
	mu              sync.Mutex
	ok              int
	failures        map[string]int // by code name
	firstFailures   []string       // the first few, with their messages
	servedBy        map[string]int // OK calls by the address that answered
	latencies       []time.Duration
	attempts        int
	transparent     int            // attempts grpc-go retried on its own (stream never reached a server)
	attemptFailures map[string]int // failed attempts by code, retried or not
	connections     map[string]int // transports opened, by remote address
}

func newTally(addrs []string) *tally {
	t := &tally{
		failures:        map[string]int{},
		servedBy:        map[string]int{},
		attemptFailures: map[string]int{},
		connections:     map[string]int{},
	}
	for _, a := range addrs {
		t.servedBy[a] = 0
		t.connections[a] = 0
	}
	return t
}

func codeName(err error) string {
	return code.Code(status.Code(err)).String()
}

func (t *tally) call(took time.Duration, served net.Addr, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.latencies = append(t.latencies, took)
	if err != nil {
		t.failures[codeName(err)]++
		if len(t.firstFailures) < 5 {
			t.firstFailures = append(t.firstFailures, err.Error())
		}
		return
	}
	t.ok++
	if served != nil {
		t.servedBy[served.String()]++
	}
}

func (t *tally) failed() int {
	n := 0
	for _, c := range t.failures {
		n += c
	}
	return n
}

func (t *tally) progress(elapsed time.Duration) map[string]any {
	t.mu.Lock()
	defer t.mu.Unlock()
	return map[string]any{
		"kind":        "progress",
		"elapsed_s":   elapsed.Seconds(),
		"ok":          t.ok,
		"failed":      t.failed(),
		"served_by":   copyCounts(t.servedBy),
		"connections": copyCounts(t.connections),
	}
}

func (t *tally) summary(elapsed time.Duration, rate float64, issued int, maxLag time.Duration, addrs []string) map[string]any {
	t.mu.Lock()
	defer t.mu.Unlock()
	sorted := append([]time.Duration(nil), t.latencies...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	ms := func(q float64) float64 {
		if len(sorted) == 0 {
			return 0
		}
		return float64(sorted[int(q*float64(len(sorted)-1))].Microseconds()) / 1000
	}
	return map[string]any{
		"kind":             "summary",
		"targets":          addrs,
		"rate":             rate,
		"elapsed_s":        elapsed.Seconds(),
		"total":            issued,
		"ok":               t.ok,
		"failed":           t.failed(),
		"failures":         copyCounts(t.failures),
		"first_failures":   append([]string{}, t.firstFailures...),
		"served_by":        copyCounts(t.servedBy),
		"attempts":         t.attempts,
		"transparent":      t.transparent,
		"attempt_failures": copyCounts(t.attemptFailures),
		"connections":      copyCounts(t.connections),
		"latency_ms":       map[string]float64{"p50": ms(0.5), "p99": ms(0.99), "max": ms(1)},
		"max_lag_ms":       float64(maxLag.Microseconds()) / 1000,
	}
}

func copyCounts(m map[string]int) map[string]int {
	c := make(map[string]int, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// attemptCounter sees every attempt of every call (a retry is a new attempt
// with its own Begin and End) and every transport the channel opens, which the
// calls' own results cannot show.
type attemptCounter struct{ tally *tally }

type methodKey struct{}

func (a *attemptCounter) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, methodKey{}, info.FullMethodName)
}

func (a *attemptCounter) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if ctx.Value(methodKey{}) != method { // not the health checks' Watch streams
		return
	}
	t := a.tally
	switch s := s.(type) {
	case *stats.Begin:
		t.mu.Lock()
		t.attempts++
		if s.IsTransparentRetryAttempt {
			t.transparent++
		}
		t.mu.Unlock()
	case *stats.End:
		if s.Error != nil {
			t.mu.Lock()
			t.attemptFailures[codeName(s.Error)]++
			t.mu.Unlock()
		}
	}
}

func (a *attemptCounter) TagConn(ctx context.Context, info *stats.ConnTagInfo) context.Context {
	if info.RemoteAddr != nil {
		a.tally.mu.Lock()
		a.tally.connections[info.RemoteAddr.String()]++
		a.tally.mu.Unlock()
	}
	return ctx
}

func (a *attemptCounter) HandleConn(context.Context, stats.ConnStats) {}
