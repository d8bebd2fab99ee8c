import { connect, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { ChatError } from "../chat/errors.ts";
import type { Bus } from "./bus.ts";
import { assertPublishSubject, createLocalRouter } from "./local_router.ts";
import { redactUrls } from "../observability/redact.ts";
import { drainOrClose } from "./nats_close.ts";
import { natsServers } from "./nats_servers.ts";
import { createPublishBound, MAX_PENDING_BYTES } from "./publish_bound.ts";

/** Options of {@link createNatsBus}. */
export interface NatsBusOptions {
  /** One server URL, or several separated by commas. */
  servers: string;
  /** The connection name shown in NATS monitoring. */
  name?: string;
  /**
   * Called after the connection came back, with how long payloads may have been lost: the
   * time it was down, plus how long a silent loss of the connection takes to be noticed.
   * Payloads published meanwhile by other instances are lost to this one, and this one's to
   * them, so listeners should resynchronise from the store.
   */
  onReconnect?: (lostForMs: number) => void;
  /**
   * Called when the connection is lost, and again at each attempt to get it back, with how long
   * payloads may have been lost so far (counted as for `onReconnect`).
   */
  onLoss?: (lostForMs: number) => void;
  /**
   * Told of every failure that is not thrown: a ChatError `unavailable` when NATS refused or
   * lost something, `internal` when a handler threw. Defaults to `reportError`.
   */
  onError?: (error: unknown) => void;
  /**
   * Bytes published and not yet confirmed by the server past which the connection is given up
   * (and dialled again) and publishes are dropped until it is back, rather than held: see
   * bus/publish_bound.ts. Defaults to MAX_PENDING_BYTES.
   */
  maxPendingBytes?: number;
}

/** Between reconnect attempts; short, because while disconnected remote payloads are lost. */
const RECONNECT_WAIT_MS = 1_000;
/**
 * A connection that stops answering without closing (a network partition) is given up after
 * this many pings in a row go unanswered, one every interval; nats.js's default interval, two
 * minutes, would leave it unnoticed for up to six.
 */
const PING_INTERVAL_MS = 20_000;
const MAX_PINGS_OUT = 2;
/** The longest a connection can be lost before the client notices and says so. */
export const UNNOTICED_LOSS_MS = PING_INTERVAL_MS * (MAX_PINGS_OUT + 1);
/**
 * nats.js writes what was published in one task together, unless the pending bytes pass its
 * (undocumented) `pendingLimit`, 32 KiB by default; unread pushes are tens of KiB each, so at
 * that limit nearly every publish became a write of its own.
 */
const writeCoalescing = { pendingLimit: 1024 * 1024 };

/** The longest `check()` waits for the server to answer. */
const CHECK_TIMEOUT_MS = 2_000;

/**
 * Connects to NATS and returns the bus over it. Rejects with a ChatError `unavailable` when
 * the first connection fails; afterwards it reconnects forever and never throws from
 * `publish` for transport reasons (see `onError`). `publish` throws a plain Error on a subject
 * with wildcards, `subscribe` on an invalid pattern.
 */
export async function createNatsBus(options: NatsBusOptions): Promise<Bus> {
  const onError = options.onError ?? reportError;
  let nc: NatsConnection;
  try {
    nc = await connect({
      ...natsServers(options.servers),
      ...(options.name === undefined ? {} : { name: options.name }),
      // publish has already handed the payload to local handlers.
      noEcho: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: RECONNECT_WAIT_MS,
      pingInterval: PING_INTERVAL_MS,
      maxPingOut: MAX_PINGS_OUT,
      ...writeCoalescing,
    });
  } catch (cause) {
    const servers = redactUrls(options.servers, { tokenAsUser: true });
    throw new ChatError("unavailable", `cannot connect to NATS at ${servers}`, { cause });
  }
  const connection = nc;
  const router = createLocalRouter({ onError });
  const remote = new Map<string, Subscription>();
  const bound = createPublishBound({
    limit: options.maxPendingBytes ?? MAX_PENDING_BYTES,
    flush: () => connection.flush(),
    onReached(unconfirmedBytes) {
      onError(
        new ChatError(
          "unavailable",
          `NATS has not confirmed the last ${unconfirmedBytes} bytes published: the connection ` +
            "is given up, and publishes are dropped until it is back",
        ),
      );
      // what the dropped publishes carried, the others read from the store after the reconnect;
      // a connection draining (a shutdown) or closed is not dialled again, and rejects
      connection.reconnect().catch(() => {});
    },
  });
  const watching = watchStatus(connection, { ...options, reset: bound.reset }, onError);

  function subscribeRemote(pattern: string): void {
    try {
      const subscription = connection.subscribe(pattern, {
        callback(error, msg) {
          if (error) {
            onError(new ChatError("unavailable", `NATS ended ${pattern}`, { cause: error }));
            return;
          }
          // Only this pattern's handlers: an overlapping pattern has its own NATS subscription.
          router.deliver(pattern, msg.subject, plain(msg.data));
        },
      });
      remote.set(pattern, subscription);
    } catch (cause) {
      // Closed or draining: local handlers still work, the rest of the cluster is out of reach.
      onError(new ChatError("unavailable", `cannot subscribe to ${pattern} on NATS`, { cause }));
    }
  }

  function unsubscribeRemote(pattern: string): void {
    const subscription = remote.get(pattern);
    remote.delete(pattern);
    try {
      subscription?.unsubscribe();
    } catch (cause) {
      onError(new ChatError("unavailable", `cannot unsubscribe ${pattern} on NATS`, { cause }));
    }
  }

  return {
    publish(subject, payload) {
      assertPublishSubject(subject);
      // NATS first: a publish made by a handler then reaches other instances after this one.
      try {
        if (bound.take(payload.length)) connection.publish(subject, payload);
      } catch (cause) {
        onError(new ChatError("unavailable", `cannot publish on ${subject} to NATS`, { cause }));
      }
      router.dispatch(subject, payload);
    },
    subscribe(subject, handler) {
      const entry = router.add(subject, handler);
      if (entry.first) subscribeRemote(subject);
      return () => {
        if (entry.remove().last) unsubscribeRemote(subject);
      };
    },
    check(signal) {
      return answers(connection, signal);
    },
    async close(signal) {
      try {
        await drainOrClose(connection, signal);
      } catch (cause) {
        onError(new ChatError("unavailable", "NATS did not drain cleanly", { cause }));
      }
      await watching;
    },
  };
}

/**
 * How long payloads may have been lost, told at each reconnect: from when the loss began, plus
 * UNNOTICED_LOSS_MS for a silent loss before the client noticed. A loss begins at a disconnect
 * after the connection had been up longer than that (long enough for what a reconnect sets off,
 * a resync request, to have gone out); a connection that drops again sooner, or flaps, keeps
 * counting from the earlier loss.
 */
export function createLossClock(now: () => number = Date.now) {
  let lossBeganAt: number | undefined;
  let reconnectedAt = Number.NEGATIVE_INFINITY;
  const lostFor = () => now() - (lossBeganAt ?? now()) + UNNOTICED_LOSS_MS;
  return {
    disconnected(): void {
      if (lossBeganAt === undefined || now() - reconnectedAt > UNNOTICED_LOSS_MS) {
        lossBeganAt = now();
      }
    },
    /** How long payloads may have been lost so far, in ms. */
    lostFor,
    /** How long payloads may have been lost, in ms. */
    reconnected(): number {
      reconnectedAt = now();
      return lostFor();
    },
  };
}

/** Reports status changes until the connection closes, which ends the iterator. */
async function watchStatus(
  nc: NatsConnection,
  listeners: Pick<NatsBusOptions, "onReconnect" | "onLoss"> & {
    /** The client dropped what it held for the server (see createPublishBound). */
    reset: () => void;
  },
  onError: (error: unknown) => void,
): Promise<void> {
  const { onReconnect, onLoss, reset } = listeners;
  const losses = createLossClock();
  try {
    for await (const status of nc.status()) {
      try {
        switch (status.type) {
          case "disconnect":
            reset();
            losses.disconnected();
            onLoss?.(losses.lostFor());
            break;
          case "reconnecting":
            reset();
            onLoss?.(losses.lostFor());
            break;
          case "reconnect":
            reset();
            onReconnect?.(losses.reconnected());
            break;
          case "error":
            onError(
              new ChatError("unavailable", "NATS reported an error", { cause: status.error }),
            );
            break;
          default:
            // Pings and cluster updates need no action: the client reconnects by itself.
            break;
        }
      } catch (failure) {
        // A throwing listener must not stop the loop, or reconnects would go unreported.
        reportError(failure);
      }
    }
  } catch (cause) {
    // close() awaits this loop, so it must settle without rejecting.
    onError(new ChatError("unavailable", "NATS status stream failed", { cause }));
  }
}

/** True when the server answers a flush before the deadline or the signal. */
async function answers(nc: NatsConnection, signal: AbortSignal | undefined): Promise<boolean> {
  if (nc.isClosed() || signal?.aborted) return false;
  const { promise: givenUp, resolve: giveUp } = Promise.withResolvers<false>();
  const timer = setTimeout(() => giveUp(false), CHECK_TIMEOUT_MS);
  const onAbort = () => giveUp(false);
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    // race() also handles a late rejection of the flush (e.g. when the connection closes).
    return await Promise.race([nc.flush().then(() => true, () => false), givenUp]);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
}

/** The Node transport hands out Buffer views; handlers get a plain Uint8Array, as in memory. */
function plain(data: Uint8Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
