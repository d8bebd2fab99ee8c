import assert from "node:assert/strict";
import { storedMessage } from "../tests/support/stored_messages.ts";
import type { ReceivedMessage } from "./received_frames.ts";
import { createSequencer } from "./sequencer.ts";

const message = (seq: number) => storedMessage("c", seq);
const seqs = (messages: ReceivedMessage[]) => messages.map((item) => item.seq);

Deno.test("a sequencer releases messages in seq order and holds those after a gap", () => {
  const sequencer = createSequencer();
  sequencer.startAfter(2);
  assert.deepEqual(seqs(sequencer.accept(message(3))), [3]);
  assert.deepEqual(seqs(sequencer.accept(message(5))), []);
  assert.equal(sequencer.hasGap, true);
  assert.deepEqual(seqs(sequencer.accept(message(6))), []);
  assert.deepEqual(seqs(sequencer.accept(message(4))), [4, 5, 6]);
  assert.equal(sequencer.hasGap, false);
  assert.equal(sequencer.last, 6);
});

Deno.test("a sequencer drops what it released or holds already, and history before its start", () => {
  const sequencer = createSequencer();
  sequencer.startAfter(10);
  assert.deepEqual(seqs(sequencer.accept(message(9))), []);
  assert.deepEqual(seqs(sequencer.accept(message(11))), [11]);
  assert.deepEqual(seqs(sequencer.accept(message(11))), []);
  assert.deepEqual(seqs(sequencer.accept(message(13))), []);
  assert.deepEqual(seqs(sequencer.accept(message(13))), []);
  assert.equal(sequencer.duplicates, 3);
});

Deno.test("a sequencer's skipGap() releases what waits, in order", () => {
  const sequencer = createSequencer();
  sequencer.startAfter(0);
  sequencer.accept(message(4));
  sequencer.accept(message(3));
  assert.deepEqual(seqs(sequencer.skipGap()), [3, 4]);
  assert.equal(sequencer.last, 4);
  assert.deepEqual(seqs(sequencer.accept(message(2))), [], "behind the skip: dropped");
});

Deno.test("a sequencer's startAfter() only moves forward, dropping what it passes", () => {
  const sequencer = createSequencer();
  sequencer.startAfter(5);
  sequencer.accept(message(7));
  sequencer.startAfter(3);
  assert.equal(sequencer.last, 5);
  sequencer.startAfter(7);
  assert.equal(sequencer.hasGap, false);
  assert.deepEqual(seqs(sequencer.accept(message(8))), [8]);
});

Deno.test("a sequencer holds the later copy of a waiting message, and takes a page whole", () => {
  const sequencer = createSequencer();
  sequencer.startAfter(1);
  sequencer.accept(storedMessage("c", 3, { content: "secret" }));
  const deleted = storedMessage("c", 3, {
    content: null,
    deleted: true,
    updated_at: "2026-01-01T00:00:05.000Z",
  });
  const released = sequencer.accept(message(2), deleted);
  assert.deepEqual(released, [message(2), deleted]);
  assert.equal(sequencer.duplicates, 1);
});

Deno.test("a sequencer's skipGap(upTo) releases what waits up to it, and what follows on from it", () => {
  const sequencer = createSequencer();
  sequencer.startAfter(1);
  for (const seq of [3, 5, 6, 9]) sequencer.accept(message(seq));
  assert.deepEqual(seqs(sequencer.skipGap(3)), [3]);
  assert.deepEqual(seqs(sequencer.skipGap(5)), [5, 6]);
  assert.equal(sequencer.last, 6);
  assert.ok(sequencer.hasGap, "9 still waits for 7 and 8");
});
