import assert from "node:assert/strict";
import { ChatError } from "../chat/errors.ts";
import { TEST_NATS_URL } from "../tests/support/service.ts";
import { within } from "../tests/support/wait.ts";
import type { Bus } from "./bus.ts";
import { createMemoryBus } from "./memory_bus.ts";
import { createNatsBus } from "./nats_bus.ts";

// One contract, written once, run against every implementation so the fake cannot drift.

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One bus with the errors it reported; `await using` closes it. */
interface Instance extends AsyncDisposable {
  readonly bus: Bus;
  readonly errors: unknown[];
}

interface Implementation {
  readonly name: string;
  open(): Promise<Instance>;
}

function instance(create: (onError: (error: unknown) => void) => Bus | Promise<Bus>) {
  return async (): Promise<Instance> => {
    const errors: unknown[] = [];
    const bus = await create((error) => errors.push(error));
    return { bus, errors, [Symbol.asyncDispose]: () => bus.close() };
  };
}

const memory: Implementation = {
  name: "memory bus",
  open: instance((onError) => createMemoryBus({ onError })),
};

const nats: Implementation = {
  name: "NATS bus",
  open: instance((onError) =>
    createNatsBus({ servers: TEST_NATS_URL, name: "bus-contract", onError })
  ),
};

/** A fresh subject prefix, so tests never see each other's payloads. */
function freshPrefix(): string {
  return `test.${crypto.randomUUID().replaceAll("-", "")}`;
}

/** A subscription that records "subject payload" lines and can wait for a count of them. */
function record(bus: Bus, pattern: string) {
  const received: string[] = [];
  let waiting: { count: number; resolve: () => void } | undefined;
  const unsubscribe = bus.subscribe(pattern, (payload, subject) => {
    received.push(`${subject} ${decoder.decode(payload)}`);
    if (waiting && received.length >= waiting.count) waiting.resolve();
  });
  return {
    received,
    unsubscribe,
    /** Waits, with a deadline, until `count` payloads have arrived. */
    async reach(count: number): Promise<void> {
      if (received.length >= count) return;
      const { promise, resolve } = Promise.withResolvers<void>();
      waiting = { count, resolve };
      await within(promise, 5_000, `${count} payloads on ${pattern} (got ${received.length})`);
    },
  };
}

function send(bus: Bus, subject: string, text: string): void {
  bus.publish(subject, encoder.encode(text));
}

/** Resolves once the transport has seen everything sent before: NATS answers in order. */
async function settled(...buses: Bus[]): Promise<void> {
  for (const bus of buses) assert.equal(await bus.check(), true);
}

for (const implementation of [memory, nats]) {
  const test = (name: string, fn: () => Promise<void>) =>
    Deno.test(`${implementation.name}: ${name}`, fn);

  test("publish delivers each payload once to each local subscriber, in publish order", async () => {
    await using a = await implementation.open();
    const subject = `${freshPrefix()}.chat.x`;
    const first = record(a.bus, subject);
    const second = record(a.bus, subject);
    const expected = Array.from({ length: 100 }, (_, i) => `${subject} ${i}`);
    for (let i = 0; i < 100; i++) send(a.bus, subject, String(i));
    await settled(a.bus);
    assert.deepEqual(first.received, expected);
    assert.deepEqual(second.received, expected);
  });

  test("a `*` subscriber gets subjects one token deeper, a `>` subscriber any tail", async () => {
    await using a = await implementation.open();
    const prefix = freshPrefix();
    const oneToken = record(a.bus, `${prefix}.chat.*`);
    const tail = record(a.bus, `${prefix}.chat.>`);
    const everything = record(a.bus, `${prefix}.>`);
    for (const subject of ["chat.a", "chat.a.b", "chat", "user.a"]) {
      send(a.bus, `${prefix}.${subject}`, "p");
    }
    await settled(a.bus);
    assert.deepEqual(oneToken.received, [`${prefix}.chat.a p`]);
    assert.deepEqual(tail.received, [`${prefix}.chat.a p`, `${prefix}.chat.a.b p`]);
    assert.deepEqual(everything.received, [
      `${prefix}.chat.a p`,
      `${prefix}.chat.a.b p`,
      `${prefix}.chat p`,
      `${prefix}.user.a p`,
    ]);
  });

  test("unsubscribe stops delivery, and unsubscribing twice is harmless", async () => {
    await using a = await implementation.open();
    const subject = `${freshPrefix()}.chat.x`;
    const subscription = record(a.bus, subject);
    send(a.bus, subject, "before");
    subscription.unsubscribe();
    subscription.unsubscribe();
    send(a.bus, subject, "after");
    await settled(a.bus);
    assert.deepEqual(subscription.received, [`${subject} before`]);
  });

  test("a subject keeps its other handlers when one of them unsubscribes", async () => {
    await using a = await implementation.open();
    const subject = `${freshPrefix()}.chat.x`;
    const leaving = record(a.bus, subject);
    const staying = record(a.bus, subject);
    leaving.unsubscribe();
    leaving.unsubscribe();
    send(a.bus, subject, "p");
    await settled(a.bus);
    assert.deepEqual(leaving.received, []);
    assert.deepEqual(staying.received, [`${subject} p`]);
  });

  test("a handler that throws does not keep the payload from the others, and is reported", async () => {
    await using a = await implementation.open();
    const subject = `${freshPrefix()}.chat.x`;
    const thrown = new Error("handler bug");
    a.bus.subscribe(subject, () => {
      throw thrown;
    });
    const after = record(a.bus, subject);
    send(a.bus, subject, "p");
    assert.deepEqual(after.received, [`${subject} p`]);
    assert.equal(a.errors.length, 1);
    assert.ok(a.errors[0] instanceof ChatError);
    assert.equal(a.errors[0].code, "internal");
    assert.equal(a.errors[0].cause, thrown);
  });

  test("publish reaches its own instance exactly once", async () => {
    await using a = await implementation.open();
    const subject = `${freshPrefix()}.chat.x`;
    const own = record(a.bus, subject);
    send(a.bus, subject, "p");
    // Delivered before publish returns, not later.
    assert.deepEqual(own.received, [`${subject} p`]);
    await settled(a.bus);
    assert.deepEqual(own.received, [`${subject} p`]);
    assert.deepEqual(a.errors, []);
  });

  test("publish on a wildcard subject and subscribe to a malformed one throw", async () => {
    await using a = await implementation.open();
    const prefix = freshPrefix();
    for (const subject of [`${prefix}.*`, `${prefix}.>`, `${prefix}..x`, "", `${prefix}.a b`]) {
      assert.throws(() => send(a.bus, subject, "p"), /invalid bus subject/);
    }
    for (const pattern of [`${prefix}.>.x`, `${prefix}.`, "", `${prefix}.a b`]) {
      assert.throws(() => a.bus.subscribe(pattern, () => {}), /invalid bus subject/);
    }
  });

  test("check() is true while the transport answers, and close() can be called twice", async () => {
    await using a = await implementation.open();
    assert.equal(await a.bus.check(), true);
    await a.bus.close();
    await a.bus.close();
  });
}

Deno.test("NATS bus: two instances exchange 1000 payloads each way, in order, once each", async () => {
  await using a = await nats.open();
  await using b = await nats.open();
  const subject = `${freshPrefix()}.chat.room`;
  const atA = record(a.bus, subject);
  const atB = record(b.bus, subject);
  await settled(a.bus, b.bus);
  for (let i = 0; i < 1000; i++) {
    send(a.bus, subject, `a${i}`);
    send(b.bus, subject, `b${i}`);
  }
  await atA.reach(2000);
  await atB.reach(2000);
  await settled(a.bus, b.bus);
  const from = (lines: string[], origin: string) =>
    lines.filter((line) => line.startsWith(`${subject} ${origin}`));
  const sent = (origin: string) =>
    Array.from({ length: 1000 }, (_, i) => `${subject} ${origin}${i}`);
  for (const at of [atA, atB]) {
    assert.equal(at.received.length, 2000);
    assert.deepEqual(from(at.received, "a"), sent("a"));
    assert.deepEqual(from(at.received, "b"), sent("b"));
  }
  assert.deepEqual([...a.errors, ...b.errors], []);
});

Deno.test("NATS bus: a subscription renewed after unsubscribing receives from another instance", async () => {
  await using a = await nats.open();
  await using b = await nats.open();
  const subject = `${freshPrefix()}.chat.x`;
  record(b.bus, subject).unsubscribe();
  const renewed = record(b.bus, subject);
  await settled(b.bus);
  send(a.bus, subject, "p");
  await renewed.reach(1);
  assert.deepEqual(renewed.received, [`${subject} p`]);
});

Deno.test("NATS bus: another instance keeps a subject until its last handler leaves", async () => {
  await using a = await nats.open();
  await using b = await nats.open();
  const prefix = freshPrefix();
  const subject = `${prefix}.chat.x`;
  const leaving = record(b.bus, subject);
  const staying = record(b.bus, subject);
  const barrier = record(b.bus, `${prefix}.barrier`);
  await settled(b.bus);
  leaving.unsubscribe();
  send(a.bus, subject, "one");
  await staying.reach(1);
  staying.unsubscribe();
  send(a.bus, subject, "two");
  // A's payloads reach B in order, so once the barrier is in, "two" would have been too.
  send(a.bus, `${prefix}.barrier`, "");
  await barrier.reach(1);
  assert.deepEqual(leaving.received, []);
  assert.deepEqual(staying.received, [`${subject} one`]);
});

Deno.test("NATS bus: overlapping patterns on another instance each receive a payload once", async () => {
  await using a = await nats.open();
  await using b = await nats.open();
  const prefix = freshPrefix();
  const exact = record(b.bus, `${prefix}.chat.x`);
  const oneToken = record(b.bus, `${prefix}.chat.*`);
  const tail = record(b.bus, `${prefix}.>`);
  await settled(b.bus);
  send(a.bus, `${prefix}.chat.x`, "p");
  send(a.bus, `${prefix}.barrier`, "");
  await tail.reach(2);
  assert.deepEqual(exact.received, [`${prefix}.chat.x p`]);
  assert.deepEqual(oneToken.received, [`${prefix}.chat.x p`]);
  assert.deepEqual(tail.received, [`${prefix}.chat.x p`, `${prefix}.barrier `]);
});

Deno.test("NATS bus: publishing on a subject nobody subscribes to is harmless", async () => {
  await using a = await nats.open();
  send(a.bus, `${freshPrefix()}.chat.nobody`, "p");
  await settled(a.bus);
  assert.deepEqual(a.errors, []);
});

Deno.test("NATS bus: publish after close reports the failure and still delivers locally", async () => {
  await using a = await nats.open();
  const subject = `${freshPrefix()}.chat.x`;
  const own = record(a.bus, subject);
  await a.bus.close();
  send(a.bus, subject, "p");
  assert.deepEqual(own.received, [`${subject} p`]);
  assert.equal(a.errors.length, 1);
  assert.ok(a.errors[0] instanceof ChatError);
  assert.equal(a.errors[0].code, "unavailable");
  assert.equal(await a.bus.check(), false);
});

Deno.test("NATS bus: a server that cannot be reached is refused as unavailable", async () => {
  await assert.rejects(
    createNatsBus({ servers: "nats://127.0.0.1:1" }),
    (error) => error instanceof ChatError && error.code === "unavailable",
  );
});
