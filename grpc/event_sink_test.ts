import { status as Status } from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { createEventSink, type StreamingCall } from "./event_sink.ts";
import type { CallStatus } from "./status.ts";

/** A call whose buffer takes `room` messages until it drains. */
function fakeCall(room: number) {
  const written: number[] = [];
  const errors: CallStatus[] = [];
  let ended = 0;
  let onDrain: (() => void) | undefined;
  const call: StreamingCall<number> = {
    write(message) {
      written.push(message);
      return written.length < room;
    },
    once(_event, listener) {
      onDrain = listener;
    },
    end() {
      ended++;
    },
    emit(_event, status) {
      errors.push(status);
      return true;
    },
  };
  return {
    call,
    written,
    errors,
    get ended() {
      return ended;
    },
    drain(more: number) {
      room += more;
      onDrain?.();
    },
  };
}

Deno.test("an event sink writes while the call has room and waits for drain after", () => {
  const fake = fakeCall(2);
  let ends = 0;
  const sink = createEventSink(fake.call, { maxBuffered: 10, onEnd: () => ends++ });
  for (let n = 1; n <= 5; n++) sink.push(n);
  assert.deepEqual(fake.written, [1, 2]);
  fake.drain(10);
  assert.deepEqual(fake.written, [1, 2, 3, 4, 5]);
  sink.end();
  assert.equal(fake.ended, 1);
  assert.equal(ends, 1);
  sink.push(6);
  sink.end();
  assert.deepEqual(fake.written, [1, 2, 3, 4, 5]);
  assert.equal(ends, 1);
});

Deno.test("an event sink that falls maxBuffered behind ends with RESOURCE_EXHAUSTED, once", () => {
  const fake = fakeCall(1);
  let ends = 0;
  const sink = createEventSink(fake.call, { maxBuffered: 3, onEnd: () => ends++ });
  for (let n = 1; n <= 10; n++) sink.push(n);
  assert.deepEqual(fake.written, [1]);
  assert.equal(fake.errors.length, 1);
  assert.equal(fake.errors[0]!.code, Status.RESOURCE_EXHAUSTED);
  assert.equal(ends, 1);
  assert.equal(sink.ended, true);
  fake.drain(100); // what was queued is dropped, not written after the end
  assert.deepEqual(fake.written, [1]);
});

Deno.test("an abandoned event sink stops without writing to the call", () => {
  const fake = fakeCall(1);
  let ends = 0;
  const sink = createEventSink(fake.call, { maxBuffered: 3, onEnd: () => ends++ });
  sink.push(1);
  sink.push(2);
  sink.abandon();
  sink.abandon();
  fake.drain(10);
  assert.deepEqual(fake.written, [1]);
  assert.equal(fake.ended, 0);
  assert.deepEqual(fake.errors, []);
  assert.equal(ends, 1);
});
