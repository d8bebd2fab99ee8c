import assert from "node:assert/strict";
import type { Sanction } from "../chat/types.ts";
import { settledWhileHeld, within } from "../tests/support/wait.ts";
import {
  createSanctionScreens,
  type Screenable,
  type ScreenOutcome,
  startSanctionSweeps,
} from "./sanction_screens.ts";

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

const banned: Sanction = { banned: true, disconnectedOn: null };

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

Deno.test("confirmBan() holds only the user's sockets, closes them when the store has the ban in force, and believes the event when it does not answer", async () => {
  const sockets = [new FakeSocket("alice"), new FakeSocket("bob"), new FakeSocket("alice")];
  const answers = [new Map<string, Sanction>(), new Map([["alice", banned]])];
  const failures: unknown[] = [];
  const outcomes: Array<Record<ScreenOutcome, number>> = [];
  const screens = createSanctionScreens(() => sockets, {
    sanctionsOf: () => {
      const answer = answers.shift();
      return answer ? Promise.resolve(answer) : Promise.reject(new Error("database away"));
    },
    onError: (error) => failures.push(error),
    onScreened: (outcome) => outcomes.push(outcome),
  });
  // lifted (or run out) before its event came: kept
  await screens.confirmBan("alice");
  assert.deepEqual(sockets.map((socket) => socket.closed), [false, false, false]);
  assert.deepEqual(sockets[1]!.heldBy, [], "another user's socket");
  // in force: closed
  await screens.confirmBan("alice");
  assert.deepEqual(sockets.map((socket) => socket.closed), [true, false, true]);
  // no store to ask: the event is believed
  const later = new FakeSocket("alice");
  sockets.push(later);
  await screens.confirmBan("alice");
  assert.deepEqual(later.answers, [{ screen: 3, sanction: banned }]);
  assert.equal(later.closed, true);
  assert.equal(failures.length, 1);
  // not a screen after a reconnect or a sweep: neither counted nor logged as one
  assert.deepEqual(outcomes, []);
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

Deno.test("a screen for a sweep holds and asks about only the users it names", async () => {
  const sockets = [new FakeSocket("alice"), new FakeSocket("mallory"), new FakeSocket("mallory")];
  const asked: string[][] = [];
  const swept: boolean[] = [];
  const screens = createSanctionScreens(() => sockets, {
    sanctionsOf: (userIds) => {
      asked.push([...userIds]);
      return Promise.resolve(new Map([["mallory", banned]]));
    },
    onError: () => assert.fail("no error expected"),
    onScreened: (_outcomes, isSweep) => swept.push(isSweep),
  });
  await screens.screen(new Set(["mallory", "nobody-here"]));
  assert.deepEqual(asked, [["mallory", "mallory"]]);
  assert.deepEqual(sockets.map((socket) => [socket.heldBy.length, socket.closed]), [
    [0, false],
    [1, true],
    [1, true],
  ]);
  assert.deepEqual(swept, [true]);
});

Deno.test("sanction sweeps look at the store each period, screen the users sanctioned with sockets here, and report a failing store once", async () => {
  const answers: Array<string[] | Error> = [
    ["mallory", "elsewhere"],
    new Error("store away"),
    new Error("store away"),
    [],
    ["eve"],
  ];
  const windows: Array<{ withinMs: number; exceptLastMs?: number }> = [];
  const screened: string[][] = [];
  const errors: unknown[] = [];
  const done = Promise.withResolvers<void>();
  const sweeps = startSanctionSweeps({
    sanctionedWithin: (window) => {
      windows.push(window);
      const answer = answers.shift();
      return answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer ?? []);
    },
    connected: (userId) => userId === "mallory" || userId === "eve",
    screen: (users) => {
      screened.push([...users]);
      if (screened.length === 2) done.resolve();
      return Promise.resolve();
    },
    onError: (error) => errors.push(error),
  }, 10);
  try {
    await within(done.promise, 2_000, "the second screen, at the fifth look");
  } finally {
    sweeps.stop();
  }
  assert.deepEqual(screened, [["mallory"], ["eve"]]);
  assert.equal(errors.length, 1, "the failing store reported once");
  // each window reaches two periods back from the previous look, and leaves out the last period
  assert.ok(windows.every((window) => window.exceptLastMs === 10 && window.withinMs >= 20));
  // a failed look's stretch is read by the next: the windows after the failures are wider
  assert.ok(windows[3]!.withinMs >= 20 + 3 * 10, `${windows[3]!.withinMs}`);
});

Deno.test("sanction sweeps stopped during a look resolve once it has ended: its statement is over before the pools end", async () => {
  const asked = Promise.withResolvers<void>();
  const answer = Promise.withResolvers<string[]>();
  const sweeps = startSanctionSweeps({
    sanctionedWithin: () => {
      asked.resolve();
      return answer.promise;
    },
    connected: () => false,
    screen: () => Promise.resolve(),
    onError: () => {},
  }, 10);
  await within(asked.promise, 2_000, "the first look");
  const stoppedEarly = await settledWhileHeld(
    Promise.resolve(sweeps.stop()),
    () => answer.resolve([]),
  );
  assert.equal(
    stoppedEarly,
    false,
    "the sweeps stopped while their look still waited on the store",
  );
});
