package meshadapter.crosslang;

import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.Message;
import java.lang.reflect.InvocationTargetException;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import meshadapter.options.v1.Options;
import meshadapter.options.v1.Options.EventRoute;

/**
 * What each Kafka topic carries, read from the {@code (meshadapter.options.v1.event)} options of
 * the generated Java event messages: the consumer checks records against the protos, not against
 * a copy of the adapter's rules.
 */
final class EventContract {
  /** Dead-letter records: the raw vendor payload, the cause in {@code dlq_*} headers. */
  static final String DEAD_LETTER_TYPE = "dev.mesh-adapter.deadletter";

  /** One routed event message. */
  record Route(EventRoute option, Message prototype) {
    String fullName() {
      return prototype.getDescriptorForType().getFullName();
    }

    /** The record key the adapter derives: the value at {@code key_field}, else the source. */
    String expectedKey(Message event) {
      if (option.getKeyField().isEmpty()) {
        return option.getSource();
      }
      Object value = event;
      for (String name : option.getKeyField().split("\\.")) {
        Message message = (Message) value;
        FieldDescriptor field = message.getDescriptorForType().findFieldByName(name);
        value = message.getField(field);
      }
      return String.valueOf(value);
    }

    /** {@code ce_type}: the route's type, plus {@code .<action>} when the event has one. */
    String expectedType(Message event) {
      FieldDescriptor action = event.getDescriptorForType().findFieldByName("action");
      String value = action == null ? "" : (String) event.getField(action);
      return value.isEmpty() ? option.getCeType() : option.getCeType() + "." + value;
    }
  }

  /** The generated files that hold event messages (Java has no global registry of them). */
  private static final List<Class<?>> EVENT_FILES =
      List.of(openframe.v1.Events.class, octospine.v1.Events.class);

  private EventContract() {}

  /** Default topic name (before any prefix) to its route. */
  static Map<String, Route> routesByTopic() {
    Map<String, Route> routes = new TreeMap<>();
    for (Class<?> outer : EVENT_FILES) {
      for (Class<?> nested : outer.getDeclaredClasses()) {
        if (!Message.class.isAssignableFrom(nested)) {
          continue;
        }
        Message prototype = defaultInstance(nested);
        Descriptor descriptor = prototype.getDescriptorForType();
        if (!descriptor.getOptions().hasExtension(Options.event)) {
          continue;
        }
        EventRoute option = descriptor.getOptions().getExtension(Options.event);
        for (String topic : option.getTopicsList()) {
          routes.put(topic, new Route(option, prototype));
        }
      }
    }
    if (routes.isEmpty()) {
      throw new IllegalStateException("no event routes in " + EVENT_FILES + ": are the stubs current?");
    }
    return routes;
  }

  private static Message defaultInstance(Class<?> type) {
    try {
      return (Message) type.getMethod("getDefaultInstance").invoke(null);
    } catch (NoSuchMethodException | IllegalAccessException | InvocationTargetException e) {
      throw new IllegalStateException(type + " is not a generated message class", e);
    }
  }
}
