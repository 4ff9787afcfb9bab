package meshadapter.crosslang;

import com.google.gson.JsonElement;
import com.google.gson.JsonParser;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.MessageOrBuilder;
import com.google.protobuf.Struct;
import com.google.protobuf.util.JsonFormat;

/** The proto3 JSON mapping, with proto field names, as every client of the suite prints it. */
final class Json {
  private static final JsonFormat.Printer PRINTER =
      JsonFormat.printer().preservingProtoFieldNames().omittingInsignificantWhitespace();

  private Json() {}

  static JsonElement of(MessageOrBuilder message) {
    try {
      return JsonParser.parseString(PRINTER.print(message));
    } catch (InvalidProtocolBufferException e) {
      throw new IllegalStateException("cannot print " + message.getClass().getName(), e);
    }
  }

  static Struct struct(String json) {
    Struct.Builder builder = Struct.newBuilder();
    try {
      JsonFormat.parser().merge(json, builder);
    } catch (InvalidProtocolBufferException e) {
      throw new IllegalArgumentException("not a JSON object: " + json, e);
    }
    return builder.build();
  }
}
