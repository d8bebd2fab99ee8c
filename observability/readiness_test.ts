import assert from "node:assert/strict";
import { within } from "../tests/support/wait.ts";
import { createReadiness, type ReadinessReport } from "./readiness.ts";

/** A dependency whose answer the test sets. */
function switchable(initial: boolean) {
  let up = initial;
  let asked = 0;
  return {
    check: () => {
      asked++;
      return Promise.resolve(up);
    },
    set(value: boolean) {
      up = value;
    },
    get asked() {
      return asked;
    },
  };
}

/** Collects reports; `next(predicate)` waits for one. */
function listener() {
  const reports: ReadinessReport[] = [];
  const waiters = new Set<() => void>();
  return {
    reports,
    hear(report: ReadinessReport) {
      reports.push(report);
      for (const waiter of [...waiters]) waiter();
    },
    next(predicate: (report: ReadinessReport) => boolean, what: string) {
      let waiter = () => {};
      const found = new Promise<ReadinessReport>((resolve) => {
        waiter = () => {
          const report = reports.find(predicate);
          if (report) resolve(report);
        };
        waiters.add(waiter);
        waiter();
      });
      return within(found, 2_000, what).finally(() => waiters.delete(waiter));
    },
  };
}

Deno.test("check() is ready when every dependency answers", async () => {
  const readiness = createReadiness({
    database: switchable(true).check,
    nats: switchable(true).check,
  });
  assert.deepEqual(await readiness.check(), {
    ready: true,
    checks: { database: true, nats: true },
  });
  readiness.close();
});

Deno.test("check() is not ready and names the dependency that does not answer", async () => {
  const readiness = createReadiness({
    database: switchable(true).check,
    nats: switchable(false).check,
  });
  assert.deepEqual(await readiness.check(), {
    ready: false,
    checks: { database: true, nats: false },
    reason: "not answering: nats",
  });
  readiness.close();
});

Deno.test("a dependency that answers but cannot serve is not ready, with its own reason after those not answering", async () => {
  const readiness = createReadiness({
    database: () => Promise.resolve("read-only (default_transaction_read_only is on)"),
    nats: switchable(false).check,
    media: switchable(false).check,
  });
  assert.deepEqual(await readiness.check(), {
    ready: false,
    checks: { database: false, nats: false, media: false },
    reason: "not answering: nats, media; database: read-only (default_transaction_read_only is on)",
  });
  readiness.close();
});

Deno.test("a dependency that throws counts as not answering", async () => {
  const readiness = createReadiness({ database: () => Promise.reject(new Error("refused")) });
  const report = await readiness.check();
  assert.equal(report.ready, false);
  assert.equal(report.reason, "not answering: database");
  readiness.close();
});

Deno.test("a dependency that ignores its signal counts as not answering after the timeout", async () => {
  const { promise: never, resolve } = Promise.withResolvers<boolean>();
  const readiness = createReadiness({ database: () => never }, { timeoutMs: 20 });
  const report = await within(readiness.check(), 2_000, "the check to give up");
  assert.deepEqual(report.checks, { database: false });
  resolve(true);
  readiness.close();
});

Deno.test("concurrent check() calls share one round of questions", async () => {
  const database = switchable(true);
  const readiness = createReadiness({ database: database.check });
  await Promise.all([readiness.check(), readiness.check(), readiness.check()]);
  assert.equal(database.asked, 1);
  readiness.close();
});

Deno.test("a subscriber hears the first report and then only changes, polled while it listens", async () => {
  const database = switchable(true);
  const readiness = createReadiness({ database: database.check }, { intervalMs: 5 });
  const heard = listener();
  const leave = readiness.subscribe((report) => heard.hear(report));
  await heard.next((report) => report.ready, "the first report");
  database.set(false);
  await heard.next((report) => !report.ready, "the change to not ready");
  database.set(true);
  await heard.next((report) => report.ready && heard.reports.length === 3, "the change back");
  leave();
  assert.deepEqual(heard.reports.map((report) => report.ready), [true, false, true]);
  readiness.close();
});

Deno.test("leaving and subscribing again while a poll is under way leaves one poll, none after the last leave", async () => {
  let asked = 0;
  const { promise: secondAsked, resolve: onSecond } = Promise.withResolvers<void>();
  const { promise: released, resolve: release } = Promise.withResolvers<boolean>();
  const check = () => {
    asked++;
    if (asked !== 2) return Promise.resolve(true);
    onSecond();
    return released;
  };
  const readiness = createReadiness({ database: check }, { intervalMs: 10 });
  const leave = readiness.subscribe(() => {});
  await within(secondAsked, 2_000, "the first poll");
  leave();
  const leaveAgain = readiness.subscribe(() => {});
  release(true);
  await within(
    (async () => {
      while (asked < 6) await new Promise((resolve) => setTimeout(resolve, 5));
    })(),
    2_000,
    "polls after subscribing again",
  );
  leaveAgain();
  const askedAtLeave = asked;
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.equal(asked, askedAtLeave, "a poll loop outlived its subscribers");
  readiness.close();
});

Deno.test("close() tells subscribers the instance is shutting down, for good", async () => {
  const readiness = createReadiness({ database: switchable(true).check });
  await readiness.check();
  const heard = listener();
  readiness.subscribe((report) => heard.hear(report));
  readiness.close();
  const last = heard.reports.at(-1);
  assert.deepEqual(last, { ready: false, checks: { database: true }, reason: "shutting down" });
  const after = await readiness.check();
  assert.equal(after.ready, false);
  assert.equal(after.reason, "shutting down");
});
