import assert from "node:assert/strict";
import { ShutdownSequence, untilDeadline } from "./shutdown.ts";
import { within } from "./tests/support/wait.ts";

Deno.test("a shutdown runs its steps once each, the last added first, past one that fails", async () => {
  const ran: string[] = [];
  const failures: unknown[] = [];
  const shutdown = new ShutdownSequence(2_000, (error) => failures.push(error));
  shutdown.add(() => void ran.push("pool"));
  shutdown.add(() => {
    throw new Error("the bus would not drain");
  });
  shutdown.add(() => Promise.resolve().then(() => void ran.push("sockets")));
  const first = shutdown.run();
  // a second close while the first runs ends with it, not before
  await shutdown.run();
  assert.deepEqual(ran, ["sockets", "pool"]);
  await first;
  await shutdown.run();
  assert.deepEqual(ran, ["sockets", "pool"]);
  assert.deepEqual(failures.map((error) => (error as Error).message), ["the bus would not drain"]);
});

Deno.test("a shutdown's steps get a deadline before its timeout, and the time left of it", async () => {
  const shutdown = new ShutdownSequence(400, () => {});
  assert.equal(shutdown.secondsLeft(), 0.1, "no time is left before the shutdown began");
  let left = 0;
  let abortedAfterMs = 0;
  let finished: boolean | undefined;
  shutdown.add(async (deadline) => {
    left = shutdown.secondsLeft();
    const started = performance.now();
    // work that never ends, cut at the deadline
    finished = await untilDeadline(new Promise(() => {}), deadline, "test work");
    abortedAfterMs = performance.now() - started;
  });
  await shutdown.run();
  // the timeout less a tenth of it, for the process to exit after the last step
  assert.ok(left > 0.3 && left <= 0.36, `${left} s left at the start`);
  // half the timeout when it is short: what was cut still needs a moment to close
  assert.equal(finished, false, "the work did not finish");
  assert.ok(abortedAfterMs >= 190 && abortedAfterMs < 380, `cut after ${abortedAfterMs} ms`);
});

Deno.test("work that ends before the deadline is waited for, not the deadline", async () => {
  const deadline = new AbortController();
  let done = false;
  const work = new Promise<void>((resolve) => setTimeout(resolve, 20)).then(() => {
    done = true;
  });
  const finished = await within(untilDeadline(work, deadline.signal, "work"), 1_000, "the end");
  assert.ok(done && finished, "returned once the work was done");
});

Deno.test("a step after one that used up the deadline still gets a share of the time left", async () => {
  const shutdown = new ShutdownSequence(1_000, () => {});
  let drained: boolean | undefined;
  let waitedMs = 0;
  // added first, so it runs last: a drain that takes 50 ms
  shutdown.add(async (deadline) => {
    const started = performance.now();
    const work = new Promise<void>((resolve) => setTimeout(resolve, 50));
    drained = await untilDeadline(work, shutdown.notBefore(deadline, 0.25), "drain");
    waitedMs = performance.now() - started;
  });
  // a step that holds until the deadline
  shutdown.add(async (deadline) => {
    await untilDeadline(new Promise(() => {}), deadline, "hung work");
  });
  await shutdown.run();
  assert.equal(drained, true, "the drain got its share of the second left after the deadline");
  assert.ok(waitedMs < 120, `waited ${waitedMs} ms, not the drain's time`);
});

Deno.test("a step's share of the time left does not end before the deadline", async () => {
  const shutdown = new ShutdownSequence(1_000, () => {});
  let finished: boolean | undefined;
  shutdown.add(async (deadline) => {
    // 300 ms of work: past a quarter of the time left, well before the deadline (500 ms)
    const work = new Promise<void>((resolve) => setTimeout(resolve, 300));
    finished = await untilDeadline(work, shutdown.notBefore(deadline, 0.25), "drain");
  });
  await shutdown.run();
  assert.equal(finished, true);
});

Deno.test("a finished shutdown leaves no timer behind, though a step still listens to its deadline", async () => {
  // as the steps do (a socket's close, the pool's end): a listener on the deadline, or on a
  // share of it, refs its timer, which kept a tool (`deno task seed`) alive for the whole
  // timeout after everything had closed
  const script = `
    import { ShutdownSequence } from ${
    JSON.stringify(new URL("./shutdown.ts", import.meta.url).href)
  };
    const shutdown = new ShutdownSequence(30_000, (error) => console.error(error));
    shutdown.add((deadline) => {
      shutdown.notBefore(deadline, 0.5).addEventListener("abort", () => {});
      deadline.addEventListener("abort", () => {});
    });
    await shutdown.run();
  `;
  const started = performance.now();
  const { code, stderr } = await within(
    new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-check", script],
      stdout: "null",
      stderr: "piped",
    }).output(),
    60_000,
    "the process",
  );
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  const tookMs = performance.now() - started;
  assert.ok(tookMs < 10_000, `the process ended ${Math.round(tookMs)} ms after it started`);
});
