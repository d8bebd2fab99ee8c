import assert from "node:assert/strict";
import type { Sanction } from "../chat/types.ts";
import { createSanctionScreens, type Screenable, type ScreenOutcome } from "./sanction_screens.ts";

/** A socket that records what the screens told it; closed when a sanction is given. */
class FakeSocket implements Screenable {
  heldBy: number[] = [];
  answers: Array<{ screen: number; sanction: Sanction | undefined }> = [];
  constructor(readonly userId: string, public closed = false) {}
  holdUntilScreened(screen: number): boolean {
    if (this.closed) return false;
    this.heldBy.push(screen);
    return true;
  }
  screened(screen: number, sanction: Sanction | undefined): "kept" | "closed" | "gone" {
    this.answers.push({ screen, sanction });
    if (this.closed) return "gone";
    this.closed = sanction !== undefined;
    return this.closed ? "closed" : "kept";
  }
}

const banned: Sanction = { banned: true, disconnectedAt: null };

Deno.test("a screen holds every open socket at once, reads all their users' sanctions in one query, and answers each socket", async () => {
  const sockets = [
    new FakeSocket("alice"),
    new FakeSocket("mallory"),
    new FakeSocket("alice"),
    new FakeSocket("bob"),
    new FakeSocket("gone", true),
  ];
  const asked: string[][] = [];
  const outcomes: Array<Record<ScreenOutcome, number>> = [];
  const read = Promise.withResolvers<Map<string, Sanction>>();
  const screens = createSanctionScreens(() => sockets, {
    sanctionsOf: (userIds) => {
      asked.push([...userIds]);
      return read.promise;
    },
    onError: (error) => {
      throw error;
    },
    onScreened: (outcome) => outcomes.push(outcome),
  });
  const screened = screens.screen();
  // held before the query is answered: nothing the catch-up brings can pass
  assert.deepEqual(sockets.map((socket) => socket.heldBy), [[1], [1], [1], [1], []]);
  assert.deepEqual(asked, [["alice", "mallory", "alice", "bob"]]);
  sockets[3]!.closed = true; // by its client, while the query runs
  read.resolve(new Map([["mallory", banned]]));
  await screened;
  assert.deepEqual(sockets.map((socket) => socket.answers), [
    [{ screen: 1, sanction: undefined }],
    [{ screen: 1, sanction: banned }],
    [{ screen: 1, sanction: undefined }],
    [{ screen: 1, sanction: undefined }],
    [],
  ]);
  assert.deepEqual(outcomes, [{ kept: 2, closed: 1, gone: 1, unanswered: 0 }]);
});

Deno.test("a screen whose query fails lets every socket go unscreened and reports the failure", async () => {
  const sockets = [new FakeSocket("alice"), new FakeSocket("bob")];
  const failures: unknown[] = [];
  const outcomes: Array<Record<ScreenOutcome, number>> = [];
  const screens = createSanctionScreens(() => sockets, {
    sanctionsOf: () => Promise.reject(new Error("database away")),
    onError: (error) => failures.push(error),
    onScreened: (outcome) => outcomes.push(outcome),
  });
  await screens.screen();
  assert.equal(failures.length, 1);
  assert.deepEqual(outcomes, [{ kept: 0, closed: 0, gone: 0, unanswered: 2 }]);
  for (const socket of sockets) {
    assert.deepEqual(socket.answers, [{ screen: 1, sanction: undefined }]);
  }
});

Deno.test("screens begun before the first is answered each answer with their own number", async () => {
  const socket = new FakeSocket("alice");
  const reads = [
    Promise.withResolvers<Map<string, Sanction>>(),
    Promise.withResolvers<Map<string, Sanction>>(),
  ];
  let next = 0;
  const screens = createSanctionScreens(() => [socket], {
    sanctionsOf: () => reads[next++]!.promise,
    onError: (error) => {
      throw error;
    },
  });
  const first = screens.screen();
  const second = screens.screen();
  assert.deepEqual(socket.heldBy, [1, 2]);
  // answered out of order: the socket is told which screen each answer is for
  reads[1]!.resolve(new Map());
  await second;
  reads[0]!.resolve(new Map());
  await first;
  assert.deepEqual(socket.answers.map((answer) => answer.screen), [2, 1]);
});
