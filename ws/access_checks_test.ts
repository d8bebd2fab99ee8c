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
    answer(name: string, outcome: AccessCheckOutcome = "kept") {
      answers.get(name)!.shift()!(outcome);
    },
    /** Resolves once `count` checks have begun. */
    begun(count: number): Promise<true> {
      return watch.until(() => log.length >= count || undefined, `${count} checks`);
    },
  };
}

Deno.test("access checks run a few sockets at a time, and requests during a pass run one more pass after it", async () => {
  const held = heldSockets(["a", "b", "c"]);
  const passes: number[] = [];
  const outcomes: AccessCheckOutcome[] = [];
  const checks = createAccessChecks(() => held.sockets, {
    atOnce: 2,
    onPass: (sockets) => passes.push(sockets),
    onChecked: (outcome) => outcomes.push(outcome),
  });
  checks.request();
  assert.deepEqual(held.log, ["c", "b"], "two at a time");
  checks.request();
  checks.request();
  held.answer("c");
  await held.begun(3);
  held.answer("b", "closed");
  held.answer("a");
  // the two requests made during the pass run one more pass, not two
  await held.begun(5);
  held.answer("c");
  held.answer("b");
  await held.begun(6);
  held.answer("a");
  await checks.stop();
  assert.deepEqual(held.log, ["c", "b", "a", "c", "b", "a"]);
  assert.deepEqual(passes, [3, 3]);
  assert.deepEqual(outcomes, ["kept", "closed", "kept", "kept", "kept", "kept"]);
});

Deno.test("a pass the store does not answer stops there, and every socket is checked again later", async () => {
  const held = heldSockets(["a", "b", "c"]);
  let unanswered = 0;
  const checks = createAccessChecks(() => held.sockets, {
    atOnce: 1,
    retryMs: 20,
    onUnanswered: () => unanswered++,
  });
  checks.request();
  held.answer("c", "unanswered");
  // the retry starts over, and no socket was checked after the store failed
  await held.begun(2);
  assert.deepEqual(held.log, ["c", "c"]);
  assert.equal(unanswered, 1);
  held.answer("c");
  await held.begun(3);
  held.answer("b");
  await held.begun(4);
  held.answer("a");
  await checks.stop();
  assert.deepEqual(held.log, ["c", "c", "b", "a"]);
  assert.equal(unanswered, 1);
});

Deno.test("stopped access checks take no requests and leave no retry behind", async () => {
  const held = heldSockets(["a"]);
  const checks = createAccessChecks(() => held.sockets, { retryMs: 60_000 });
  checks.request();
  held.answer("a", "unanswered");
  // the retry timer is pending now; a stop that left it would fail the leak sanitizer
  await checks.stop();
  checks.request();
  assert.deepEqual(held.log, ["a"], "a request after stop() began a check");
});
