// Command crosslang-go calls mesh-adapter through Go stubs generated from
// protos/ (by tests/crosslang/setup.sh) and prints what it saw as one JSON
// object on stdout, for tests/crosslang/test_crosslang.py to check against the
// simulator's state. It is a plain client: nothing in it knows the adapter is
// written in Python.
//
//	crosslang-go --addr 127.0.0.1:50051 list-devices
//	crosslang-go --addr 127.0.0.1:50051 --deadline-ms 300 deadline
//	crosslang-go --addr 127.0.0.1:50051 --ca ca.pem --cert reader.pem --key reader-key.pem access
//
// A scenario that cannot run prints the cause on stderr and exits with 1; an
// RPC error that a scenario expects is part of its JSON result.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// options are the command-line settings a scenario may read.
type options struct {
	timeout  time.Duration // deadline of each ordinary call
	deadline time.Duration // the tiny deadline of the deadline scenario
	pageSize int
}

type scenario func(ctx context.Context, conn *grpc.ClientConn, opts options) (any, error)

var scenarios = map[string]scenario{
	"list-devices":     listDevices,
	"alert-lifecycle":  alertLifecycle,
	"pipeline":         pipeline,
	"health":           health,
	"error":            notFoundError,
	"invalid-argument": invalidArgument,
	"deadline":         deadline,
	"access":           access,
}

func main() {
	os.Exit(runCLI())
}

func runCLI() int {
	addr := flag.String("addr", "", "adapter address, host:port (required)")
	timeoutMs := flag.Int("timeout-ms", 10000, "deadline of each call, in milliseconds")
	deadlineMs := flag.Int("deadline-ms", 300, "deadline of the call in the deadline scenario, in milliseconds")
	pageSize := flag.Int("page-size", 7, "page_size of list calls")
	caFile := flag.String("ca", "", "CA bundle (PEM) the server's certificate must chain to: TLS instead of plaintext")
	certFile := flag.String("cert", "", "client certificate (PEM) for mTLS, with --key")
	keyFile := flag.String("key", "", "client private key (PEM) for mTLS")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: %s --addr HOST:PORT [flags] SCENARIO\nscenarios: %s\nflags:\n",
			os.Args[0], strings.Join(scenarioNames(), ", "))
		flag.PrintDefaults()
	}
	flag.Parse()
	if *addr == "" || flag.NArg() != 1 {
		flag.Usage()
		return 2
	}
	opts := options{
		timeout:  time.Duration(*timeoutMs) * time.Millisecond,
		deadline: time.Duration(*deadlineMs) * time.Millisecond,
		pageSize: *pageSize,
	}
	name := flag.Arg(0)
	run, ok := scenarios[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown scenario %q (known: %s)\n", name, strings.Join(scenarioNames(), ", "))
		return 2
	}

	transport, err := transportCredentials(*caFile, *certFile, *keyFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	// passthrough: the address is used as given (an IP literal), no resolver.
	conn, err := grpc.NewClient("passthrough:///"+*addr, grpc.WithTransportCredentials(transport))
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: dial %s: %v\n", name, *addr, err)
		return 1
	}
	defer conn.Close()

	result, err := run(context.Background(), conn, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	out := json.NewEncoder(os.Stdout)
	out.SetIndent("", "  ")
	if err := out.Encode(result); err != nil {
		fmt.Fprintf(os.Stderr, "%s: encode result: %v\n", name, err)
		return 1
	}
	return 0
}

// transportCredentials is plaintext without a CA; TLS verifying the server
// against the CA otherwise, presenting a client certificate when one is given.
func transportCredentials(caFile, certFile, keyFile string) (credentials.TransportCredentials, error) {
	if caFile == "" {
		return insecure.NewCredentials(), nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", caFile)
	}
	config := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return credentials.NewTLS(config), nil
}

func scenarioNames() []string {
	names := make([]string, 0, len(scenarios))
	for name := range scenarios {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// call returns a context carrying the per-call deadline.
func (o options) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, o.timeout)
}

// asJSON renders a message the way the proto3 JSON mapping does, with proto
// field names (`device_id`) so the test reads the same names in every language.
func asJSON(m proto.Message) json.RawMessage {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("protojson %T: %v", m, err))
	}
	return b
}
