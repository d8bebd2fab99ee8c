import assert from "node:assert/strict";
import { ChatError } from "../chat/errors.ts";
import { TEST_NATS_URL } from "../tests/support/service.ts";
import { startTcpProxy } from "../tests/support/tcp_proxy.ts";
import { within } from "../tests/support/wait.ts";
import { createNatsBus, type NatsBusOptions, UNNOTICED_LOSS_MS } from "./nats_bus.ts";

// What only the NATS bus does: survive a dropped connection. The drop is made by a TCP proxy
// (tests/support/tcp_proxy.ts) in front of the shared server, so no server has to be stopped.

const natsUrl = new URL(TEST_NATS_URL);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A bus that closes when disposed; `beforeClose` runs first (a stalled proxy restored). */
async function openBus(options: NatsBusOptions, beforeClose = () => {}) {
  const bus = await createNatsBus(options);
  return {
    bus,
    [Symbol.asyncDispose]() {
      beforeClose();
      return bus.close();
    },
  };
}

/** A subject of this test's alone on the shared server. */
const freshSubject = () => `test.${crypto.randomUUID().replaceAll("-", "")}.chat.x`;

Deno.test("NATS bus: after the connection drops it reconnects, tells onLoss and onReconnect, and receives again", async () => {
  await using proxy = startTcpProxy(natsUrl.href);
  const reconnected = Promise.withResolvers<number>();
  const losses: number[] = [];
  const errors: unknown[] = [];
  await using dropped = await openBus({
    servers: proxy.url,
    onLoss: (lostForMs) => losses.push(lostForMs),
    onReconnect: (lostForMs) => reconnected.resolve(lostForMs),
    onError: (error) => errors.push(error),
  });
  await using other = await openBus({ servers: natsUrl.href });
  const subject = freshSubject();
  const received: string[] = [];
  const arrived = Promise.withResolvers<void>();
  dropped.bus.subscribe(subject, (payload) => {
    received.push(decoder.decode(payload));
    if (received.includes("remote")) arrived.resolve();
  });
  assert.equal(await dropped.bus.check(), true);

  const cutAt = Date.now();
  await proxy.cut();
  // While the connection is down publish neither throws nor skips local handlers.
  dropped.bus.publish(subject, encoder.encode("local"));
  assert.deepEqual(received, ["local"]);
  // NATS is reachable again: the bus's next attempt gets through
  proxy.restore();

  const lostForMs = await within(reconnected.promise, 10_000, "reconnect");
  // the time it was down, and the time a silent loss could have gone unnoticed before that
  const downForMs = Date.now() - cutAt;
  assert.ok(
    lostForMs >= UNNOTICED_LOSS_MS && lostForMs <= UNNOTICED_LOSS_MS + downForMs,
    `lost for ${lostForMs} ms, down for ${downForMs} ms`,
  );
  // told at the loss and at each attempt to get it back, counted the same way
  assert.ok(losses.length >= 1, "onLoss was called");
  assert.ok(
    losses.every((ms) => ms >= UNNOTICED_LOSS_MS && ms <= lostForMs),
    `losses ${losses.join(", ")} ms, lost for ${lostForMs} ms`,
  );
  // The client subscribes again on reconnect; the flush proves the server has it.
  assert.equal(await dropped.bus.check(), true);
  other.bus.publish(subject, encoder.encode("remote"));
  await within(arrived.promise, 10_000, "payload after reconnect");
  assert.deepEqual(received, ["local", "remote"]);
  assert.deepEqual(errors, []);
});

Deno.test("NATS bus: check() is false once the caller's signal aborts", async () => {
  const bus = await createNatsBus({ servers: natsUrl.href });
  try {
    const controller = new AbortController();
    const answer = bus.check(controller.signal);
    // Aborts before the server's answer can arrive, which needs a turn of the event loop.
    controller.abort();
    assert.equal(await answer, false);
    assert.equal(await bus.check(AbortSignal.abort()), false);
    assert.equal(await bus.check(), true);
  } finally {
    await bus.close();
  }
});

Deno.test("NATS bus: a failed first connection is reported without the credentials in the URLs", async () => {
  // nothing listens on port 1; the password and the token must not reach logs through the error
  const servers = "nats://alice:s3cret-password@127.0.0.1:1, nats://s3cret-token@127.0.0.1:1";
  const error = await createNatsBus({ servers }).then(
    () => assert.fail("connected to nothing"),
    (error: unknown) => error,
  );
  assert.ok(error instanceof ChatError && error.code === "unavailable");
  assert.doesNotMatch(error.message, /s3cret/);
  assert.match(error.message, /nats:\/\/alice:redacted@127\.0\.0\.1:1/);
  assert.match(error.message, /nats:\/\/redacted@127\.0\.0\.1:1/);
});

Deno.test("NATS bus: close() gives up a drain NATS does not answer once its signal aborts, and stops reconnecting", async () => {
  await using proxy = startTcpProxy(natsUrl.href);
  const bus = await createNatsBus({ servers: proxy.url });
  bus.subscribe(freshSubject(), () => {});
  // a NATS gone silent: the connection stays open, and the drain is never answered
  proxy.stall("both");

  const controller = new AbortController();
  const closed = bus.close(controller.signal);
  controller.abort();
  await within(closed, 10_000, "close after the abort");
  // the sanitizer fails this test if the client left a reconnect or ping timer behind
});

Deno.test("NATS bus: a tls:// server that offers no TLS is refused, not spoken to in the clear", async () => {
  // the shared server has no TLS: with the credentials in the URL, a client that went on in the
  // clear would hand them to whoever answered the address
  const error = await createNatsBus({ servers: `tls://${natsUrl.host}` }).then(
    async (bus) => {
      await bus.close();
      assert.fail("connected without TLS to a tls:// server");
    },
    (error: unknown) => error,
  );
  assert.ok(error instanceof ChatError && error.code === "unavailable", String(error));
});

Deno.test("NATS bus: a NATS that stops answering is given up once maxPendingBytes published are unconfirmed, and what comes past them is dropped, not held", async () => {
  await using proxy = startTcpProxy(natsUrl.href);
  const lost = Promise.withResolvers<void>();
  const reconnected = Promise.withResolvers<void>();
  const errors: unknown[] = [];
  const maxPendingBytes = 1024 * 1024;
  await using stalled = await openBus({
    servers: proxy.url,
    maxPendingBytes,
    onLoss: () => lost.resolve(),
    onReconnect: () => reconnected.resolve(),
    onError: (error) => errors.push(error),
    // a drain through a stalled proxy would wait for good
  }, () => proxy.restore());
  await using other = await openBus({ servers: natsUrl.href });
  const subject = freshSubject();
  const arrived = Promise.withResolvers<void>();
  let heard = 0;
  other.bus.subscribe(subject, (payload) => {
    if (decoder.decode(payload) === "after") arrived.resolve();
    else heard++;
  });
  let local = 0;
  stalled.bus.subscribe(subject, () => local++);
  assert.equal(await other.bus.check(), true);
  assert.equal(await stalled.bus.check(), true);

  // open and silent: the client's pings would notice it only after UNNOTICED_LOSS_MS
  proxy.stall("both");
  const payload = new Uint8Array(16 * 1024).fill(65);
  const published = (4 * maxPendingBytes) / payload.length;
  for (let n = 0; n < published; n++) stalled.bus.publish(subject, payload);
  assert.equal(local, published, "local handlers get every payload all the same");
  await within(lost.promise, 5_000, "the stalled connection given up");
  assert.ok(
    errors.some((error) =>
      error instanceof ChatError && error.code === "unavailable" &&
      /not confirmed/.test(error.message)
    ),
    `errors: ${errors.map(String).join("; ")}`,
  );

  // the stall ends: the bus is back without a restart, and publishes reach the others again
  proxy.restore();
  await within(reconnected.promise, 10_000, "reconnect after the stall");
  assert.equal(await stalled.bus.check(), true);
  stalled.bus.publish(subject, encoder.encode("after"));
  await within(arrived.promise, 10_000, "a payload published after the stall");
  // no more than the bound was ever handed to the client for the stalled connection
  assert.ok(heard <= maxPendingBytes / payload.length, `${heard} of ${published} got through`);
});

Deno.test("NATS bus: publishes past maxPendingBytes while close() drains a NATS that stops answering are dropped without an uncaught error", async () => {
  await using proxy = startTcpProxy(natsUrl.href);
  const errors: unknown[] = [];
  const maxPendingBytes = 64 * 1024;
  const bus = await createNatsBus({
    servers: proxy.url,
    maxPendingBytes,
    onError: (error) => errors.push(error),
  });
  proxy.stall("both");
  const controller = new AbortController();
  // a shutdown: the writes that finished meanwhile publish while the connection drains
  const closed = bus.close(controller.signal);
  const payload = new Uint8Array(16 * 1024);
  for (let n = 0; n < (4 * maxPendingBytes) / payload.length; n++) {
    bus.publish(freshSubject(), payload);
  }
  controller.abort();
  await within(closed, 10_000, "close after the abort");
  assert.ok(
    errors.some((error) => error instanceof ChatError && /not confirmed/.test(error.message)),
    `errors: ${errors.map(String).join("; ")}`,
  );
});
