package meshadapter.crosslang;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.rpc.BadRequest;
import com.google.rpc.Code;
import com.google.rpc.DebugInfo;
import com.google.rpc.ErrorInfo;
import com.google.rpc.Help;
import com.google.rpc.LocalizedMessage;
import com.google.rpc.PreconditionFailure;
import com.google.rpc.QuotaFailure;
import com.google.rpc.RequestInfo;
import com.google.rpc.ResourceInfo;
import com.google.rpc.RetryInfo;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import java.util.List;

/** A failed call as the rich error model describes it: google.rpc.Status and its typed details. */
final class Failures {
  /** The google.rpc error detail types; a detail of any other type is reported as undecodable. */
  private static final List<Class<? extends Message>> DETAIL_TYPES =
      List.of(
          ErrorInfo.class,
          BadRequest.class,
          RetryInfo.class,
          QuotaFailure.class,
          ResourceInfo.class,
          RequestInfo.class,
          PreconditionFailure.class,
          DebugInfo.class,
          Help.class,
          LocalizedMessage.class);

  private Failures() {}

  /**
   * {@code code}, {@code message} and the {@code status} decoded from the grpc-status-details-bin
   * trailer by {@link StatusProto#fromThrowable}; plus typed fields read the way an application
   * would ({@code error_info}, {@code retry_delay_ms}).
   */
  static JsonObject describe(StatusRuntimeException e) {
    JsonObject result = new JsonObject();
    result.addProperty("code", e.getStatus().getCode().name());
    result.addProperty("message", e.getStatus().getDescription());
    com.google.rpc.Status status = StatusProto.fromThrowable(e);
    if (status == null) {
      result.add("status", null);
      return result;
    }
    JsonArray details = new JsonArray();
    for (Any detail : status.getDetailsList()) {
      details.add(decode(detail, result));
    }
    JsonObject st = new JsonObject();
    st.addProperty("code", Code.forNumber(status.getCode()).name());
    st.addProperty("message", status.getMessage());
    st.add("details", details);
    result.add("status", st);
    return result;
  }

  private static JsonObject decode(Any detail, JsonObject result) {
    JsonObject out = new JsonObject();
    for (Class<? extends Message> type : DETAIL_TYPES) {
      if (!detail.is(type)) {
        continue;
      }
      Message value;
      try {
        value = detail.unpack(type);
      } catch (InvalidProtocolBufferException e) {
        out.addProperty("undecodable", detail.getTypeUrl() + ": " + e.getMessage());
        return out;
      }
      if (value instanceof ErrorInfo info) { // typed access, as an application would do it
        JsonObject typed = new JsonObject();
        typed.addProperty("reason", info.getReason());
        typed.addProperty("domain", info.getDomain());
        JsonObject metadata = new JsonObject();
        info.getMetadataMap().forEach(metadata::addProperty);
        typed.add("metadata", metadata);
        result.add("error_info", typed);
      } else if (value instanceof RetryInfo retry) {
        result.addProperty(
            "retry_delay_ms",
            retry.getRetryDelay().getSeconds() * 1000 + retry.getRetryDelay().getNanos() / 1_000_000);
      }
      out.addProperty("type", value.getDescriptorForType().getFullName());
      out.add("value", Json.of(value));
      return out;
    }
    out.addProperty("undecodable", detail.getTypeUrl());
    return out;
  }
}
