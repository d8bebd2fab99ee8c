import type { ChatStore } from "../chat/ports.ts";
import type { StoreMetrics } from "../observability/metrics.ts";

/**
 * Wraps a store so that each operation is timed (`chat_db_query_duration_seconds`, by method
 * name and outcome) and each new message counted. Timing the store's methods, rather than
 * postgres.js's `debug` hook, keeps query text and parameters out of reach.
 */
export function withStoreMetrics(store: ChatStore, metrics: StoreMetrics): ChatStore {
  const wrapped: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(store)) {
    // the errors at 0 from the start: a series that first appears at 5 never rose, to
    // Prometheus, and a first burst of failures would raise no alert
    if (typeof value === "function") {
      metrics.dbQueryDuration.zero({ operation: name, outcome: "error" });
    }
    wrapped[name] = typeof value === "function"
      ? async (...args: unknown[]) => {
        const started = performance.now();
        let outcome = "error";
        try {
          const result = await value.apply(store, args);
          outcome = "ok";
          return result;
        } finally {
          metrics.dbQueryDuration.observe(
            { operation: name, outcome },
            (performance.now() - started) / 1000,
          );
        }
      }
      : value;
  }
  const timed = wrapped as unknown as ChatStore;
  return {
    ...timed,
    async insertMessage(message) {
      const inserted = await timed.insertMessage(message);
      if (!inserted.duplicate) metrics.messagesStored.inc({ media_type: message.media_type });
      return inserted;
    },
  };
}
