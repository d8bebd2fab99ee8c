import assert from "node:assert/strict";
import { type AccessCheckable, createAccessChecks } from "./access_checks.ts";

/** A socket whose check waits until the test answers it. */
class HeldSocket implements AccessCheckable {
  #answers: Array<(answered: boolean) => void> = [];
  constructor(readonly log: string[], readonly name: string) {}
  checkAccess(): Promise<boolean> {
    this.log.push(this.name);
    return new Promise((resolve) => this.#answers.push(resolve));
  }
  answer(answered = true): void {
    this.#answers.shift()!(answered);
  }
}

const turn = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("access checks run a few sockets at a time, and a request during a pass runs one more pass after it", async () => {
  const log: string[] = [];
  const sockets = ["a", "b", "c"].map((name) => new HeldSocket(log, name));
  const passes: number[] = [];
  const checks = createAccessChecks(() => sockets, { atOnce: 2, onPass: (n) => passes.push(n) });
  checks.request();
  await turn();
  assert.equal(log.length, 2, "two at a time");
  checks.request();
  checks.request();
  sockets[2]!.answer();
  await turn();
  assert.equal(log.length, 3);
  sockets[1]!.answer();
  sockets[0]!.answer();
  await turn();
  // the two requests made during the pass run one more pass, not two
  assert.deepEqual(log, ["c", "b", "a", "c", "b"]);
  sockets[2]!.answer();
  sockets[1]!.answer();
  await turn();
  sockets[0]!.answer();
  await checks.stop();
  assert.deepEqual(passes, [3, 3]);
  assert.deepEqual(log, ["c", "b", "a", "c", "b", "a"]);
});

Deno.test("a pass the store does not answer stops there, and every socket is checked again later", async () => {
  const log: string[] = [];
  const sockets = ["a", "b", "c"].map((name) => new HeldSocket(log, name));
  let unanswered = 0;
  const checks = createAccessChecks(() => sockets, {
    atOnce: 1,
    retryMs: 20,
    onUnanswered: () => unanswered++,
  });
  checks.request();
  await turn();
  sockets[2]!.answer(false);
  await turn();
  assert.deepEqual(log, ["c"], "no socket checked after the store failed");
  assert.equal(unanswered, 1);
  await new Promise((resolve) => setTimeout(resolve, 40));
  assert.deepEqual(log, ["c", "c"], "the retry starts over");
  sockets[2]!.answer();
  await turn();
  sockets[1]!.answer();
  await turn();
  sockets[0]!.answer();
  await checks.stop();
  assert.deepEqual(log, ["c", "c", "b", "a"]);
  assert.equal(unanswered, 1);
});

Deno.test("stopped access checks cancel their retry and take no requests", async () => {
  const log: string[] = [];
  const socket = new HeldSocket(log, "a");
  const checks = createAccessChecks(() => [socket], { retryMs: 10 });
  checks.request();
  await turn();
  socket.answer(false);
  await turn();
  await checks.stop();
  checks.request();
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.deepEqual(log, ["a"]);
});
