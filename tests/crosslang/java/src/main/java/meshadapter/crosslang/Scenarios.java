package meshadapter.crosslang;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.protobuf.FieldMask;
import com.google.protobuf.Descriptors.FileDescriptor;
import com.google.protobuf.Descriptors.ServiceDescriptor;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthGrpc;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import octospine.v1.Common.Authentication;
import octospine.v1.PipelineServiceGrpc;
import octospine.v1.Pipelines.CreatePipelineRequest;
import octospine.v1.Pipelines.GetPipelineRequest;
import octospine.v1.Pipelines.Pipeline;
import octospine.v1.Pipelines.PipelineDestination;
import octospine.v1.Pipelines.PipelineSource;
import octospine.v1.Pipelines.Transformation;
import openframe.v1.AlertServiceGrpc;
import openframe.v1.Alerts.Alert;
import openframe.v1.Alerts.AlertStatus;
import openframe.v1.Alerts.CreateAlertRequest;
import openframe.v1.Alerts.GetAlertRequest;
import openframe.v1.Alerts.Severity;
import openframe.v1.Alerts.UpdateAlertRequest;
import openframe.v1.DeviceServiceGrpc;
import openframe.v1.Devices.ListDevicesRequest;
import openframe.v1.Devices.ListDevicesResponse;

/** The scenarios of the cross-language suite; each returns what the test compares. */
final class Scenarios {
  /**
   * Every file of protos/ that declares services. Java has no global registry of generated files,
   * so they are named here; the health test fails when one is missing.
   */
  private static final List<FileDescriptor> SERVICE_FILES =
      List.of(
          openframe.v1.Alerts.getDescriptor(),
          openframe.v1.Devices.getDescriptor(),
          openframe.v1.SecurityEvents.getDescriptor(),
          octospine.v1.Automations.getDescriptor(),
          octospine.v1.Integrations.getDescriptor(),
          octospine.v1.Pipelines.getDescriptor(),
          octospine.v1.System.getDescriptor(),
          octospine.v1.Tasks.getDescriptor(),
          octospine.v1.Webhooks.getDescriptor(),
          meshadapter.v1.Events.getDescriptor());

  private Scenarios() {}

  /** Pages through ListDevices with page_size / page_token until next_page_token is empty. */
  static JsonObject listDevices(ManagedChannel channel, Client.Options options) {
    DeviceServiceGrpc.DeviceServiceBlockingStub devices = DeviceServiceGrpc.newBlockingStub(channel);
    JsonArray ids = new JsonArray();
    JsonArray pageSizes = new JsonArray();
    String token = "";
    for (int page = 0; ; page++) {
      if (page == 100) {
        throw new IllegalStateException("paging did not end after 100 pages");
      }
      ListDevicesResponse response =
          devices
              .withDeadlineAfter(options.timeout().toMillis(), TimeUnit.MILLISECONDS)
              .listDevices(
                  ListDevicesRequest.newBuilder()
                      .setPageSize(options.pageSize())
                      .setPageToken(token)
                      .build());
      response.getDevicesList().forEach(d -> ids.add(d.getId()));
      pageSizes.add(response.getDevicesCount());
      token = response.getNextPageToken();
      if (token.isEmpty()) {
        break;
      }
    }
    JsonObject result = new JsonObject();
    result.add("ids", ids);
    result.add("page_sizes", pageSizes);
    return result;
  }

  /**
   * Creates an alert with a request_id (sent twice: the second answer must be the first replayed),
   * reads it back, then resolves it with an update_mask naming only {@code status}.
   */
  static JsonObject alertLifecycle(ManagedChannel channel, Client.Options options) {
    AlertServiceGrpc.AlertServiceBlockingStub alerts =
        AlertServiceGrpc.newBlockingStub(channel)
            .withDeadlineAfter(options.timeout().toMillis(), TimeUnit.MILLISECONDS);
    CreateAlertRequest create =
        CreateAlertRequest.newBuilder()
            .setAlert(
                Alert.newBuilder()
                    .setTitle("java client alert")
                    .setSeverity(Severity.SEVERITY_HIGH)
                    .setDeviceId("dev_001")
                    .setDescription("created by tests/crosslang/java")
                    .setMetadata(Json.struct("{\"client\": \"java\", \"checks\": [\"disk\", 2], \"ticket\": null}")))
            .setRequestId("crosslang-java-" + java.lang.System.nanoTime())
            .build();
    Alert created = alerts.createAlert(create);
    Alert replayed = alerts.createAlert(create);
    Alert got = alerts.getAlert(GetAlertRequest.newBuilder().setAlertId(created.getId()).build());
    Alert updated =
        alerts.updateAlert(
            UpdateAlertRequest.newBuilder()
                // The title is set but not masked: it must not reach the upstream.
                .setAlert(
                    Alert.newBuilder()
                        .setId(created.getId())
                        .setStatus(AlertStatus.ALERT_STATUS_RESOLVED)
                        .setTitle("not sent"))
                .setUpdateMask(FieldMask.newBuilder().addPaths("status"))
                .build());
    JsonObject result = new JsonObject();
    result.addProperty("request_id", create.getRequestId());
    result.add("created", Json.of(created));
    result.add("replayed", Json.of(replayed));
    result.add("got", Json.of(got));
    result.addProperty("got_equals_created", got.equals(created));
    result.add("updated", Json.of(updated));
    return result;
  }

  /** Creates a pipeline with nested messages, repeated transformations and Structs; reads it back. */
  static JsonObject pipeline(ManagedChannel channel, Client.Options options) {
    PipelineServiceGrpc.PipelineServiceBlockingStub pipelines =
        PipelineServiceGrpc.newBlockingStub(channel)
            .withDeadlineAfter(options.timeout().toMillis(), TimeUnit.MILLISECONDS);
    Pipeline created =
        pipelines.createPipeline(
            CreatePipelineRequest.newBuilder()
                .setPipeline(
                    Pipeline.newBuilder()
                        .setName("java client pipeline")
                        .setSource(
                            PipelineSource.newBuilder()
                                .setType("api")
                                .setEndpoint("https://source.example/java")
                                .setAuthentication(
                                    Authentication.newBuilder()
                                        .setType("bearer")
                                        .setToken("java-source-token")))
                        .addTransformations(
                            Transformation.newBuilder()
                                .setType("clean")
                                .setParameters(Json.struct("{\"removeNulls\": true, \"maxNullRatio\": 0.25}")))
                        .addTransformations(
                            Transformation.newBuilder()
                                .setType("enrich")
                                .setParameters(
                                    Json.struct(
                                        "{\"enrichments\": [\"geolocation\", \"company\"],"
                                            + " \"fallback\": {\"country\": \"unknown\", \"confidence\": 0, \"note\": null}}")))
                        .setDestination(
                            PipelineDestination.newBuilder().setType("database").setTable("java_processed")))
                .build());
    Pipeline got =
        pipelines.getPipeline(GetPipelineRequest.newBuilder().setPipelineId(created.getId()).build());
    JsonObject result = new JsonObject();
    result.add("created", Json.of(created));
    result.add("got", Json.of(got));
    return result;
  }

  /** Asks grpc.health.v1 about the server ("") and every service of protos/, by full name. */
  static JsonObject health(ManagedChannel channel, Client.Options options) {
    List<String> names = new ArrayList<>(List.of(""));
    for (FileDescriptor file : SERVICE_FILES) {
      for (ServiceDescriptor service : file.getServices()) {
        names.add(service.getFullName());
      }
    }
    TreeMap<String, String> statuses = new TreeMap<>();
    for (String name : names) {
      try {
        statuses.put(
            name,
            HealthGrpc.newBlockingStub(channel)
                .withDeadlineAfter(options.timeout().toMillis(), TimeUnit.MILLISECONDS)
                .check(HealthCheckRequest.newBuilder().setService(name).build())
                .getStatus()
                .name());
      } catch (StatusRuntimeException e) {
        if (e.getStatus().getCode() != Status.Code.NOT_FOUND) {
          throw e;
        }
        statuses.put(name, e.getStatus().getCode().name()); // not served here
      }
    }
    JsonObject result = new JsonObject();
    JsonObject byName = new JsonObject();
    statuses.forEach(byName::addProperty);
    result.add("statuses", byName);
    return result;
  }

  /** Gets an alert that does not exist and decodes the rich error model. */
  static JsonObject notFoundError(ManagedChannel channel, Client.Options options) {
    String missing = "alt_missing_crosslang_java";
    try {
      AlertServiceGrpc.newBlockingStub(channel)
          .withDeadlineAfter(options.timeout().toMillis(), TimeUnit.MILLISECONDS)
          .getAlert(GetAlertRequest.newBuilder().setAlertId(missing).build());
    } catch (StatusRuntimeException e) {
      JsonObject result = Failures.describe(e);
      result.addProperty("alert_id", missing);
      return result;
    }
    throw new IllegalStateException("GetAlert(" + missing + ") succeeded where it should fail");
  }

  /** Creates an alert without its required title: a BadRequest names the caller's field. */
  static JsonObject invalidArgument(ManagedChannel channel, Client.Options options) {
    try {
      AlertServiceGrpc.newBlockingStub(channel)
          .withDeadlineAfter(options.timeout().toMillis(), TimeUnit.MILLISECONDS)
          .createAlert(
              CreateAlertRequest.newBuilder()
                  .setAlert(Alert.newBuilder().setSeverity(Severity.SEVERITY_LOW).setDeviceId("dev_001"))
                  .build());
    } catch (StatusRuntimeException e) {
      return Failures.describe(e);
    }
    throw new IllegalStateException("CreateAlert without a title succeeded where it should fail");
  }

  /**
   * Lists devices while the upstream answers 429 with a Retry-After longer than the call's
   * deadline (the test sets that fault): RESOURCE_EXHAUSTED with a RetryInfo saying when to retry.
   */
  static JsonObject rateLimited(ManagedChannel channel, Client.Options options) {
    warmUp(channel, options);
    try {
      DeviceServiceGrpc.newBlockingStub(channel)
          .withDeadlineAfter(options.timeout().toMillis(), TimeUnit.MILLISECONDS)
          .listDevices(ListDevicesRequest.getDefaultInstance());
    } catch (StatusRuntimeException e) {
      return Failures.describe(e);
    }
    throw new IllegalStateException("ListDevices succeeded where the upstream answers 429");
  }

  /**
   * Connects and loads the call path before a timed call: a cold JVM on a busy machine can spend
   * seconds of a deadline on class loading and the TCP/HTTP2 handshake, and the call would then
   * end before it reached the adapter.
   */
  private static void warmUp(ManagedChannel channel, Client.Options options) {
    HealthGrpc.newBlockingStub(channel)
        .withDeadlineAfter(options.timeout().toMillis(), TimeUnit.MILLISECONDS)
        .check(HealthCheckRequest.getDefaultInstance());
  }

  /** Calls ListDevices with a deadline far below the upstream's latency; reports how and when it ended. */
  static JsonObject deadline(ManagedChannel channel, Client.Options options) {
    warmUp(channel, options);
    // The DeviceService call path too, on a route the test's latency fault leaves alone.
    DeviceServiceGrpc.newBlockingStub(channel)
        .withDeadlineAfter(options.timeout().toMillis(), TimeUnit.MILLISECONDS)
        .getDevice(openframe.v1.Devices.GetDeviceRequest.newBuilder().setDeviceId("dev_001").build());
    long start = java.lang.System.nanoTime();
    String code = "OK";
    try {
      DeviceServiceGrpc.newBlockingStub(channel)
          .withDeadlineAfter(options.deadline().toMillis(), TimeUnit.MILLISECONDS)
          .listDevices(ListDevicesRequest.getDefaultInstance());
    } catch (StatusRuntimeException e) {
      code = e.getStatus().getCode().name();
    }
    JsonObject result = new JsonObject();
    result.addProperty("code", code);
    result.addProperty("deadline_ms", options.deadline().toMillis());
    result.addProperty("elapsed_ms", (java.lang.System.nanoTime() - start) / 1_000_000);
    return result;
  }
}
