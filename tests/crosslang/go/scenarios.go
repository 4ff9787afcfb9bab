package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"

	// Linked for its descriptors only: the health scenario asks about every
	// service in protos/, served or not.
	_ "meshadapter.test/crosslang/gen/meshadapter/v1"
	octospinev1 "meshadapter.test/crosslang/gen/octospine/v1"
	openframev1 "meshadapter.test/crosslang/gen/openframe/v1"
)

// codeName is the canonical name of a gRPC code, e.g. "NOT_FOUND" (the Go
// codes.Code String() says "NotFound").
func codeName(err error) string {
	return code.Code(status.Code(err)).String()
}

// access makes one ListDevices call and reports its outcome, refused or not:
// the caller's identity (its certificate) decides, not the scenario.
func access(ctx context.Context, conn *grpc.ClientConn, opts options) (any, error) {
	client := openframev1.NewDeviceServiceClient(conn)
	callCtx, cancel := opts.call(ctx)
	defer cancel()
	resp, err := client.ListDevices(callCtx, &openframev1.ListDevicesRequest{PageSize: int32(opts.pageSize)})
	if err != nil {
		return failure(err), nil
	}
	return map[string]any{"code": "OK", "devices": len(resp.GetDevices())}, nil
}

// listDevices pages through ListDevices with page_size / page_token until
// next_page_token is empty.
func listDevices(ctx context.Context, conn *grpc.ClientConn, opts options) (any, error) {
	client := openframev1.NewDeviceServiceClient(conn)
	ids := []string{}
	pageSizes := []int{}
	token := ""
	for page := 0; ; page++ {
		if page == 100 {
			return nil, errors.New("paging did not end after 100 pages")
		}
		callCtx, cancel := opts.call(ctx)
		resp, err := client.ListDevices(callCtx, &openframev1.ListDevicesRequest{
			PageSize:  int32(opts.pageSize),
			PageToken: token,
		})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("ListDevices page %d: %w", page+1, err)
		}
		for _, d := range resp.GetDevices() {
			ids = append(ids, d.GetId())
		}
		pageSizes = append(pageSizes, len(resp.GetDevices()))
		token = resp.GetNextPageToken()
		if token == "" {
			break
		}
	}
	return map[string]any{"ids": ids, "page_sizes": pageSizes}, nil
}

// alertLifecycle creates an alert with a request_id (sent twice: the second
// answer must be the first one replayed), reads it back, then resolves it with
// an update_mask naming only `status`.
func alertLifecycle(ctx context.Context, conn *grpc.ClientConn, opts options) (any, error) {
	client := openframev1.NewAlertServiceClient(conn)
	metadata, err := structpb.NewStruct(map[string]any{"client": "go", "checks": []any{"disk", 2}, "ticket": nil})
	if err != nil {
		return nil, err
	}
	create := &openframev1.CreateAlertRequest{
		Alert: &openframev1.Alert{
			Title:       "go client alert",
			Severity:    openframev1.Severity_SEVERITY_HIGH,
			DeviceId:    "dev_001",
			Description: "created by tests/crosslang/go",
			Metadata:    metadata,
		},
		RequestId: fmt.Sprintf("crosslang-go-%d", time.Now().UnixNano()),
	}
	callCtx, cancel := opts.call(ctx)
	defer cancel()
	created, err := client.CreateAlert(callCtx, create)
	if err != nil {
		return nil, fmt.Errorf("CreateAlert: %w", err)
	}
	replayed, err := client.CreateAlert(callCtx, create)
	if err != nil {
		return nil, fmt.Errorf("CreateAlert (same request_id): %w", err)
	}
	got, err := client.GetAlert(callCtx, &openframev1.GetAlertRequest{AlertId: created.GetId()})
	if err != nil {
		return nil, fmt.Errorf("GetAlert: %w", err)
	}
	updated, err := client.UpdateAlert(callCtx, &openframev1.UpdateAlertRequest{
		// The title is set but not masked: it must not reach the upstream.
		Alert:      &openframev1.Alert{Id: created.GetId(), Status: openframev1.AlertStatus_ALERT_STATUS_RESOLVED, Title: "not sent"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"status"}},
	})
	if err != nil {
		return nil, fmt.Errorf("UpdateAlert: %w", err)
	}
	return map[string]any{
		"request_id":         create.GetRequestId(),
		"created":            asJSON(created),
		"replayed":           asJSON(replayed),
		"got":                asJSON(got),
		"got_equals_created": proto.Equal(got, created),
		"updated":            asJSON(updated),
	}, nil
}

// pipeline creates an OCTOSPINE pipeline with nested messages, repeated
// transformations and Struct parameters, and reads it back.
func pipeline(ctx context.Context, conn *grpc.ClientConn, opts options) (any, error) {
	client := octospinev1.NewPipelineServiceClient(conn)
	clean, err := structpb.NewStruct(map[string]any{"removeNulls": true, "maxNullRatio": 0.25})
	if err != nil {
		return nil, err
	}
	enrich, err := structpb.NewStruct(map[string]any{
		"enrichments": []any{"geolocation", "company"},
		"fallback":    map[string]any{"country": "unknown", "confidence": 0, "note": nil},
	})
	if err != nil {
		return nil, err
	}
	callCtx, cancel := opts.call(ctx)
	defer cancel()
	created, err := client.CreatePipeline(callCtx, &octospinev1.CreatePipelineRequest{
		Pipeline: &octospinev1.Pipeline{
			Name: "go client pipeline",
			Source: &octospinev1.PipelineSource{
				Type:           "api",
				Endpoint:       "https://source.example/go",
				Authentication: &octospinev1.Authentication{Type: "bearer", Token: "go-source-token"},
			},
			Transformations: []*octospinev1.Transformation{
				{Type: "clean", Parameters: clean},
				{Type: "enrich", Parameters: enrich},
			},
			Destination: &octospinev1.PipelineDestination{Type: "database", Table: "go_processed"},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("CreatePipeline: %w", err)
	}
	got, err := client.GetPipeline(callCtx, &octospinev1.GetPipelineRequest{PipelineId: created.GetId()})
	if err != nil {
		return nil, fmt.Errorf("GetPipeline: %w", err)
	}
	return map[string]any{"created": asJSON(created), "got": asJSON(got)}, nil
}

// health asks grpc.health.v1 about the server as a whole ("") and about every
// service the generated code knows from protos/, by its full name.
func health(ctx context.Context, conn *grpc.ClientConn, opts options) (any, error) {
	client := healthpb.NewHealthClient(conn)
	names := []string{""}
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		for _, prefix := range []string{"openframe/", "octospine/", "meshadapter/"} {
			if strings.HasPrefix(fd.Path(), prefix) {
				for i := 0; i < fd.Services().Len(); i++ {
					names = append(names, string(fd.Services().Get(i).FullName()))
				}
			}
		}
		return true
	})
	sort.Strings(names)
	statuses := map[string]string{}
	for _, name := range names {
		callCtx, cancel := opts.call(ctx)
		resp, err := client.Check(callCtx, &healthpb.HealthCheckRequest{Service: name})
		cancel()
		switch {
		case err == nil:
			statuses[name] = resp.GetStatus().String()
		case status.Code(err) == codes.NotFound: // not served here
			statuses[name] = codeName(err)
		default:
			return nil, fmt.Errorf("health check %q: %w", name, err)
		}
	}
	return map[string]any{"statuses": statuses}, nil
}

// notFoundError gets an alert that does not exist and decodes the rich error
// model: the google.rpc.Status in the grpc-status-details-bin trailer.
func notFoundError(ctx context.Context, conn *grpc.ClientConn, opts options) (any, error) {
	client := openframev1.NewAlertServiceClient(conn)
	callCtx, cancel := opts.call(ctx)
	defer cancel()
	const missing = "alt_missing_crosslang_go"
	_, err := client.GetAlert(callCtx, &openframev1.GetAlertRequest{AlertId: missing})
	if err == nil {
		return nil, fmt.Errorf("GetAlert(%s) succeeded where it should fail", missing)
	}
	result := failure(err)
	result["alert_id"] = missing
	return result, nil
}

// invalidArgument creates an alert without its required title: the upstream
// rejects it and the adapter names the caller's field in a BadRequest.
func invalidArgument(ctx context.Context, conn *grpc.ClientConn, opts options) (any, error) {
	client := openframev1.NewAlertServiceClient(conn)
	callCtx, cancel := opts.call(ctx)
	defer cancel()
	_, err := client.CreateAlert(callCtx, &openframev1.CreateAlertRequest{
		Alert: &openframev1.Alert{Severity: openframev1.Severity_SEVERITY_LOW, DeviceId: "dev_001"},
	})
	if err == nil {
		return nil, errors.New("CreateAlert without a title succeeded where it should fail")
	}
	return failure(err), nil
}

// failure describes a failed call: its code and message, and the
// google.rpc.Status with every detail decoded to its Go type.
func failure(err error) map[string]any {
	st := status.Convert(err)
	details := []map[string]any{}
	result := map[string]any{"code": codeName(err), "message": st.Message()}
	for _, d := range st.Details() {
		switch v := d.(type) {
		case *errdetails.ErrorInfo: // typed access, as an application would do it
			result["error_info"] = map[string]any{
				"reason": v.GetReason(), "domain": v.GetDomain(), "metadata": v.GetMetadata(),
			}
			details = append(details, map[string]any{"type": "google.rpc.ErrorInfo", "value": asJSON(v)})
		case proto.Message:
			details = append(details, map[string]any{
				"type": string(v.ProtoReflect().Descriptor().FullName()), "value": asJSON(v),
			})
		case error: // a detail whose type this binary does not know
			details = append(details, map[string]any{"undecodable": v.Error()})
		}
	}
	result["status"] = map[string]any{
		"code": code.Code(st.Proto().GetCode()).String(), "message": st.Proto().GetMessage(), "details": details,
	}
	return result
}

// deadline calls ListDevices with a deadline far below the upstream's latency
// and reports how the call ended and when.
func deadline(ctx context.Context, conn *grpc.ClientConn, opts options) (any, error) {
	client := openframev1.NewDeviceServiceClient(conn)
	callCtx, cancel := context.WithTimeout(ctx, opts.deadline)
	defer cancel()
	start := time.Now()
	_, err := client.ListDevices(callCtx, &openframev1.ListDevicesRequest{})
	elapsed := time.Since(start)
	return map[string]any{
		"code":        codeName(err),
		"deadline_ms": opts.deadline.Milliseconds(),
		"elapsed_ms":  elapsed.Milliseconds(),
	}, nil
}
