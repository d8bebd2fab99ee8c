import type { EventBus } from "./ports.ts";

/**
 * Round trips of the bus, to order what this instance delivers without it (its own events, what
 * it read from the store) after what the bus was bringing it meanwhile. Once a round trip begun
 * after a delivery has come back, whatever another instance had published before that delivery
 * was caused has reached this instance (NATS writes to a connection in the order the server took
 * the publishes in): a vendor member's removal, say, which the removal's instance sent before it
 * answered. Ticks count the deliveries; a round trip confirms the ticks given before it began.
 */
export function createBusRoundTrips(bus: Pick<EventBus, "check">) {
  let ticks = 0;
  let confirmedThrough = 0;
  /** The round trip under way, and the ticks it will confirm. */
  let current: { through: number; done: Promise<void> } | undefined;
  /** One round trip more, begun when the current one is back: for the ticks given since. */
  let next: Promise<void> | undefined;

  function begin(): Promise<void> {
    const through = ticks;
    const done = bus.check().then(() => {}, () => {}).then(() => {
      confirmedThrough = Math.max(confirmedThrough, through);
      if (current?.done === done) current = undefined;
    });
    current = { through, done };
    return done;
  }

  return {
    /** A tick for a delivery made now. */
    tick(): number {
      return ++ticks;
    },

    /** True when a round trip begun after `tick` was given has come back. */
    confirmed(tick: number): boolean {
      return tick <= confirmedThrough;
    },

    /**
     * Resolves once a round trip begun after `tick` was given has come back, or could not (the
     * bus away: what it would bring is lost to this instance, and a resync follows). At most one
     * round trip is under way and one waits behind it, whatever the ticks. Never rejects.
     */
    confirm(tick: number): Promise<void> {
      if (tick <= confirmedThrough) return Promise.resolve();
      if (!current) return begin();
      if (tick <= current.through) return current.done;
      return next ??= current.done.then(() => {
        next = undefined;
        return begin();
      });
    },
  };
}

/** The longest a store read waits for the bus to confirm the subscription made before it. */
const SUBSCRIBE_CONFIRM_MS = 1_000;

/**
 * Resolves once the bus has taken the subscriptions made so far (NATS takes a connection's SUB
 * before a later PING), so a store read begun after misses nothing published after it committed;
 * or once the bus did not answer in time, which only delays its own events (the feed's gap
 * fills and sweeps, and the resync after a reconnect, make up for them). Never rejects.
 */
export function subscriptionsConfirmed(bus: Pick<EventBus, "check">): Promise<void> {
  return bus.check(AbortSignal.timeout(SUBSCRIBE_CONFIRM_MS)).then(() => {}, () => {});
}
