import { HealthImplementation, type ServingStatus } from "grpc-health-check";
import { ADMIN_SERVICE } from "./proto.ts";

/**
 * Whether the instance should get traffic (observability/readiness.ts implements it): it asks
 * the database and NATS, and tells subscribers of every change.
 */
export interface ReadinessSource {
  /** Asks every dependency now. */
  check(): Promise<{ ready: boolean }>;
  /** Calls `listener` with the current report, then with every change; returns the leave. */
  subscribe(listener: (report: { ready: boolean }) => void): () => void;
}

/**
 * grpc.health.v1.Health that follows readiness: SERVING while the database (and NATS) answer,
 * NOT_SERVING otherwise, for the whole server ("") and for ChatAdmin. `Watch` callers hear
 * each change.
 */
export function createHealthReporter(readiness: ReadinessSource) {
  const health = new HealthImplementation({ "": "NOT_SERVING", [ADMIN_SERVICE]: "NOT_SERVING" });
  let leave: (() => void) | undefined;

  function set(status: ServingStatus) {
    health.setStatus("", status);
    health.setStatus(ADMIN_SERVICE, status);
  }

  return {
    health,
    /** Asks readiness once (so the first answer is a real one), then follows it. */
    async start(): Promise<void> {
      await readiness.check();
      leave = readiness.subscribe((report) => set(report.ready ? "SERVING" : "NOT_SERVING"));
    },
    /** NOT_SERVING from now on. */
    stop(): void {
      leave?.();
      leave = undefined;
      set("NOT_SERVING");
    },
  };
}
