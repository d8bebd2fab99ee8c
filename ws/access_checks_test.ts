import assert from "node:assert/strict";
import { createWatch } from "../tests/support/wait.ts";
import {
  type AccessCheckable,
  type AccessCheckOutcome,
  createAccessChecks,
} from "./access_checks.ts";

/** Sockets whose checks wait until the test answers them; `log` names each check begun. */
function heldSockets(names: string[]) {
  const log: string[] = [];
  const watch = createWatch();
  const answers = new Map<string, Array<(outcome: AccessCheckOutcome) => void>>();
  const sockets: AccessCheckable[] = names.map((name) => ({
    checkAccess() {
      log.push(name);
      watch.changed();
      const { promise, resolve } = Promise.withResolvers<AccessCheckOutcome>();
      answers.set(name, [...(answers.get(name) ?? []), resolve]);
      return promise;
    },
  }));
  return {
    log,
    sockets,
    watch,
    answer(name: string, outcome: AccessCheckOutcome = "kept") {
      answers.get(name)!.shift()!(outcome);
    },
    /** Resolves once `count` checks have begun. */
    begun(count: number): Promise<true> {
      return watch.until(() => log.length >= count || undefined, `${count} checks`);
    },
  };
}

Deno.test("access checks run a few sockets at a time, and a request during the checks puts the ones already checked in line again, once", async () => {
  const held = heldSockets(["a", "b", "c"]);
  const outcomes: AccessCheckOutcome[] = [];
  const checks = createAccessChecks(() => held.sockets, {
    atOnce: 2,
    onChecked: (outcome) => outcomes.push(outcome),
  });
  checks.request();
  assert.deepEqual(held.log, ["a", "b"], "two at a time");
  held.answer("a", "closed");
  await held.begun(3);
  // a and b are put in line again behind c (which is being checked); twice is still once
  checks.request();
  checks.request();
  held.answer("b");
  held.answer("c");
  await held.begun(5);
  held.answer("a", "gone");
  held.answer("b");
  await checks.stop();
  assert.deepEqual(held.log, ["a", "b", "c", "a", "b"]);
  assert.deepEqual(outcomes, ["closed", "kept", "kept", "gone", "kept"]);
});

Deno.test("a check the store does not answer pauses the checks, and that socket goes to the back of the line", async () => {
  const held = heldSockets(["a", "b", "c"]);
  let unanswered = 0;
  const checks = createAccessChecks(() => held.sockets, {
    atOnce: 1,
    retryMs: 20,
    onUnanswered: () => unanswered++,
  });
  checks.request();
  held.answer("a", "unanswered");
  // after the pause the others come first: a socket whose check keeps failing holds up nobody
  await held.begun(2);
  assert.deepEqual(held.log, ["a", "b"]);
  assert.equal(unanswered, 1);
  held.answer("b");
  await held.begun(3);
  held.answer("c");
  await held.begun(4);
  held.answer("a");
  await checks.stop();
  assert.deepEqual(held.log, ["a", "b", "c", "a"]);
  assert.equal(unanswered, 1);
});

Deno.test("stopped access checks take no requests, and no check begins when their pause would have ended", async () => {
  const held = heldSockets(["a"]);
  let unanswered = 0;
  const checks = createAccessChecks(() => held.sockets, {
    retryMs: 10,
    onUnanswered: () => {
      unanswered++;
      held.watch.changed();
    },
  });
  checks.request();
  held.answer("a", "unanswered");
  await held.watch.until(() => unanswered === 1 || undefined, "the pause");
  await checks.stop();
  checks.request();
  // nothing is to happen: wait past the end of the pause, then look
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(held.log, ["a"], "a check began after stop()");
});

Deno.test("sockets that hold their events for the check are checked first, even ahead of ones already in line", async () => {
  const names = ["a", "b", "c", "d"];
  const held = heldSockets(names);
  const holding = new Set(["c"]);
  const sockets = held.sockets.map((socket, index) => ({
    ...socket,
    holdUntilChecked: () => holding.has(names[index]!),
  }));
  const checks = createAccessChecks(() => sockets, { atOnce: 1 });
  checks.request();
  assert.deepEqual(held.log, ["c"]);
  held.answer("c");
  await held.begun(2);
  // a is being checked, b and d wait; at a second request d holds its events too
  holding.add("d");
  checks.request();
  for (const [name, count] of [["a", 3], ["c", 4], ["d", 5], ["b", 6]] as const) {
    held.answer(name);
    await held.begun(count);
  }
  held.answer("a");
  await checks.stop();
  // the holding ones first, then b (already waiting), then a (being checked at the request)
  assert.deepEqual(held.log, ["c", "a", "c", "d", "b", "a"]);
});
