package meshadapter.crosslang;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonObject;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import java.time.Duration;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

/**
 * Calls mesh-adapter through Java stubs generated from protos/ and prints what it saw as one JSON
 * object on stdout, for tests/crosslang/test_crosslang.py to check against the simulator. Same
 * command line and JSON shapes as the Go and Node clients:
 *
 * <pre>
 *   java -cp ... meshadapter.crosslang.Client --addr 127.0.0.1:50051 list-devices
 *   java -cp ... meshadapter.crosslang.Client --addr 127.0.0.1:50051 --deadline-ms 300 deadline
 * </pre>
 *
 * <p>A scenario that cannot run prints the cause on stderr and exits with 1; an RPC error that a
 * scenario expects is part of its JSON result. Usage errors exit with 2.
 */
public final class Client {
  /** Command-line settings a scenario may read. */
  record Options(Duration timeout, Duration deadline, int pageSize) {}

  @FunctionalInterface
  interface Scenario {
    JsonObject run(ManagedChannel channel, Options options) throws Exception;
  }

  static final Map<String, Scenario> SCENARIOS =
      new TreeMap<>(
          Map.of(
              "list-devices", Scenarios::listDevices,
              "alert-lifecycle", Scenarios::alertLifecycle,
              "pipeline", Scenarios::pipeline,
              "health", Scenarios::health,
              "error", Scenarios::notFoundError,
              "invalid-argument", Scenarios::invalidArgument,
              "rate-limited", Scenarios::rateLimited,
              "deadline", Scenarios::deadline));

  private Client() {}

  public static void main(String[] args) {
    System.exit(run(args));
  }

  private static int run(String[] args) {
    Map<String, String> flags = new TreeMap<>();
    String scenarioName = null;
    for (int i = 0; i < args.length; i++) {
      if (args[i].startsWith("--") && i + 1 < args.length) {
        flags.put(args[i].substring(2), args[++i]);
      } else if (scenarioName == null && !args[i].startsWith("--")) {
        scenarioName = args[i];
      } else {
        return usage("unexpected argument " + args[i]);
      }
    }
    String addr = flags.remove("addr");
    if (addr == null || scenarioName == null) {
      return usage("--addr and a scenario are required");
    }
    Scenario scenario = SCENARIOS.get(scenarioName);
    if (scenario == null) {
      return usage("unknown scenario " + scenarioName);
    }
    Options options;
    try {
      options =
          new Options(
              Duration.ofMillis(Long.parseLong(flags.getOrDefault("timeout-ms", "10000"))),
              Duration.ofMillis(Long.parseLong(flags.getOrDefault("deadline-ms", "300"))),
              Integer.parseInt(flags.getOrDefault("page-size", "7")));
    } catch (NumberFormatException e) {
      return usage("not a number: " + e.getMessage());
    }

    ManagedChannel channel =
        Grpc.newChannelBuilder(addr, InsecureChannelCredentials.create()).build();
    try {
      JsonObject result = scenario.run(channel, options);
      System.out.println(new GsonBuilder().serializeNulls().setPrettyPrinting().create().toJson(result));
      return 0;
    } catch (Exception e) {
      System.err.println(scenarioName + ": " + e);
      return 1;
    } finally {
      channel.shutdownNow();
      try {
        channel.awaitTermination(5, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  private static int usage(String problem) {
    System.err.println(problem);
    System.err.println(
        "usage: Client --addr HOST:PORT [--timeout-ms N] [--deadline-ms N] [--page-size N] SCENARIO");
    System.err.println("scenarios: " + String.join(", ", SCENARIOS.keySet()));
    return 2;
  }
}
