import type { NatsConnection } from "@nats-io/transport-node";

/**
 * Drains `connection` (its subscriptions, then what was published) and closes it; once `signal`
 * aborts, closes it at once instead, dropping what was not flushed. A drain that NATS does not
 * answer (a stalled server) would otherwise wait for it forever, the client reconnecting and
 * pinging meanwhile. Resolves once the connection is closed; rejects with what the drain threw,
 * the connection closed all the same. Safe to call again, or on a closed connection.
 */
export async function drainOrClose(
  connection: NatsConnection,
  signal?: AbortSignal,
): Promise<void> {
  // a close that fails has nothing left to release; the wait below ends with the connection
  const cut = () => void connection.close().catch(() => {});
  signal?.addEventListener("abort", cut, { once: true });
  if (signal?.aborted) cut();
  try {
    // Drains, or waits for a drain under way; resolves at once if already closed. A drain cut
    // short never settles by itself: the end of the connection ends the wait.
    await Promise.race([connection[Symbol.asyncDispose](), connection.closed()]);
  } catch (error) {
    await connection.close();
    throw error;
  } finally {
    signal?.removeEventListener("abort", cut);
  }
}
