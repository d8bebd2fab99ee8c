import type { Bus } from "./bus.ts";
import { assertPublishSubject, createLocalRouter } from "./local_router.ts";

/** Options of {@link createMemoryBus}. */
export interface MemoryBusOptions {
  /** Told when a handler throws (a ChatError `internal`); defaults to `reportError`. */
  onError?: (error: unknown) => void;
}

/**
 * Creates the bus of a single instance: the local router and nothing else, for tests and for
 * running without NATS. `publish` throws a plain Error on a subject with wildcards.
 */
export function createMemoryBus(options: MemoryBusOptions = {}): Bus {
  const router = createLocalRouter(options);
  return {
    publish(subject, payload) {
      assertPublishSubject(subject);
      router.dispatch(subject, payload);
    },
    subscribe(subject, handler) {
      const entry = router.add(subject, handler);
      return () => {
        entry.remove();
      };
    },
    check() {
      return Promise.resolve(true);
    },
    close() {
      return Promise.resolve();
    },
  };
}
