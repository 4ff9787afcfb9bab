// Command vanguard is the peer bench's compiled peer: connectrpc.com/vanguard
// serving the protos' gRPC services by transcoding each call into the REST call
// their google.api.http rules describe, proxied to the upstream through
// httputil.ReverseProxy. The schema comes from a descriptor set built from
// protos/ at bench time (no Go code generation), as the adapter's does.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"time"

	"connectrpc.com/vanguard"
	_ "google.golang.org/genproto/googleapis/api/annotations" // resolves google.api.http in the options
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:0", "address to listen on")
	descriptors := flag.String("descriptors", "", "FileDescriptorSet (with imports) built from protos/")
	upstream := flag.String("upstream", "", "base URL of the REST upstream")
	service := flag.String("service", "openframe.v1.DeviceService", "gRPC service to serve")
	flag.Parse()

	raw, err := os.ReadFile(*descriptors)
	if err != nil {
		log.Fatalf("reading -descriptors: %v", err)
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(raw, &set); err != nil {
		log.Fatalf("parsing -descriptors: %v", err)
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		log.Fatalf("building the schema: %v", err)
	}
	desc, err := files.FindDescriptorByName(protoreflect.FullName(*service))
	if err != nil {
		log.Fatalf("service %s: %v", *service, err)
	}
	schema, ok := desc.(protoreflect.ServiceDescriptor)
	if !ok {
		log.Fatalf("%s is not a service", *service)
	}
	types := dynamicpb.NewTypes(files)

	target, err := url.Parse(*upstream)
	if err != nil {
		log.Fatalf("-upstream: %v", err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	// ghz cancels the calls in flight when a run ends; those are not worth a log line each.
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	// Keep as many idle connections as the bench has calls in flight (the default
	// of 2 per host would make it reconnect constantly at concurrency 64).
	proxy.Transport = &http.Transport{
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
	}
	transcoder, err := vanguard.NewTranscoder([]*vanguard.Service{
		vanguard.NewServiceWithSchema(schema, proxy,
			vanguard.WithTargetProtocols(vanguard.ProtocolREST),
			vanguard.WithTypeResolver(types),
		),
	})
	if err != nil {
		log.Fatalf("transcoder: %v", err)
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	server := &http.Server{Handler: transcoder, Protocols: new(http.Protocols)}
	server.Protocols.SetHTTP1(true)
	server.Protocols.SetUnencryptedHTTP2(true) // gRPC clients speak h2c with prior knowledge
	log.Fatal(server.Serve(ln))
}
