import {
  type handleServerStreamingCall,
  type Server,
  type ServerWritableStream,
  status as Status,
} from "@grpc/grpc-js";
import { HealthImplementation, type ServingStatus } from "grpc-health-check";
import { ADMIN_SERVICE } from "./proto.ts";

/**
 * Whether the instance should get traffic (observability/readiness.ts implements it): it asks
 * the database, NATS and whatever else main.ts wires in (the JWKS key set), and tells
 * subscribers of every change.
 */
export interface ReadinessSource {
  /** Asks every dependency now. */
  check(): Promise<{ ready: boolean }>;
  /** Calls `listener` with the current report, then with every change; returns the leave. */
  subscribe(listener: (report: { ready: boolean }) => void): () => void;
}

type WatchCall = ServerWritableStream<unknown, unknown>;

/** The services whose health is reported: the whole server ("") and ChatAdmin. */
const SERVICES = new Set(["", ADMIN_SERVICE]);

/** The `service` a health request names; undefined when it names none. */
function serviceOf(request: unknown): string | undefined {
  return typeof request === "object" && request !== null && "service" in request &&
      typeof request.service === "string"
    ? request.service
    : undefined;
}

/**
 * The health `Watch` streams open at once, by default. Health answers without a token, and each
 * watch holds memory (about 8 KiB) for as long as its client keeps it: without a bound, one
 * client opening streams could take the process's memory. Load balancers watch with one stream
 * each; `Check` is never limited.
 */
export const MAX_HEALTH_WATCHES = 1_000;

/**
 * grpc.health.v1.Health that follows readiness: SERVING while the instance is ready, NOT_SERVING
 * otherwise, for the whole server ("") and for ChatAdmin. `Watch` callers hear each change;
 * `stop` tells them NOT_SERVING and ends their streams with UNAVAILABLE, since an open stream
 * would hold the server's graceful shutdown until it is forced. A `Watch` past `maxWatches` open
 * ones (MAX_HEALTH_WATCHES) ends at once with RESOURCE_EXHAUSTED.
 */
export function createHealthReporter(
  readiness: ReadinessSource,
  options: { maxWatches?: number } = {},
) {
  const maxWatches = options.maxWatches ?? MAX_HEALTH_WATCHES;
  const health = new HealthImplementation(
    Object.fromEntries([...SERVICES].map((service) => [service, "NOT_SERVING"])),
  );
  const watches = new Set<WatchCall>();
  let stopped = false;
  let leave: (() => void) | undefined;

  function set(status: ServingStatus) {
    for (const service of SERVICES) health.setStatus(service, status);
  }

  function end(call: WatchCall) {
    call.emit("error", {
      code: Status.UNAVAILABLE,
      details: "the server is shutting down; watch again",
    });
  }

  return {
    /** Adds Health to `server`, keeping track of the open `Watch` streams. */
    addToServer(server: Server): void {
      health.addToServer({
        addService(definition, implementation) {
          const watch = implementation.watch as handleServerStreamingCall<unknown, unknown>;
          server.addService(definition, {
            ...implementation,
            watch: ((call) => {
              if (watches.size >= maxWatches) {
                return call.emit("error", {
                  code: Status.RESOURCE_EXHAUSTED,
                  details: "too many health watches open; use Check",
                });
              }
              if (SERVICES.has(serviceOf(call.request) ?? "")) watch(call);
              // A service this server does not have never changes: it is told so once, and the
              // call is not handed on, as the library keeps every name ever watched (an empty
              // set each) for good, and names are as long as a caller without a token likes.
              else call.write({ status: "SERVICE_UNKNOWN" });
              if (stopped) return end(call);
              watches.add(call);
              call.on("cancelled", () => watches.delete(call));
            }) satisfies handleServerStreamingCall<unknown, unknown>,
          });
        },
      });
    },
    /** Asks readiness once (so the first answer is a real one), then follows it. */
    async start(): Promise<void> {
      await readiness.check();
      leave = readiness.subscribe((report) => set(report.ready ? "SERVING" : "NOT_SERVING"));
    },
    /** NOT_SERVING from now on; open `Watch` streams hear it, then end with UNAVAILABLE. */
    stop(): void {
      stopped = true;
      leave?.();
      leave = undefined;
      set("NOT_SERVING");
      for (const call of watches) end(call);
      watches.clear();
    },
  };
}
