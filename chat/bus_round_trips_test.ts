import assert from "node:assert/strict";
import { createBusRoundTrips } from "./bus_round_trips.ts";

/** A bus whose round trips come back when the test says. */
function manualBus() {
  const pending: Array<PromiseWithResolvers<boolean>> = [];
  return {
    pending,
    check(): Promise<boolean> {
      const trip = Promise.withResolvers<boolean>();
      pending.push(trip);
      return trip.promise;
    },
  };
}

Deno.test("createBusRoundTrips confirms a tick only by a round trip begun after it", async () => {
  const bus = manualBus();
  const roundTrips = createBusRoundTrips(bus);
  const first = roundTrips.tick();
  const firstConfirmed = roundTrips.confirm(first);
  const second = roundTrips.tick();
  // the round trip under way began before the second tick: another begins once it is back
  const secondConfirmed = roundTrips.confirm(second);
  const third = roundTrips.tick();
  assert.equal(roundTrips.confirm(third), secondConfirmed, "one round trip waits, for all");
  assert.equal(bus.pending.length, 1);
  bus.pending[0]!.resolve(true);
  await firstConfirmed;
  assert.equal(roundTrips.confirmed(first), true);
  assert.equal(roundTrips.confirmed(second), false);
  await Promise.resolve();
  assert.equal(bus.pending.length, 2);
  bus.pending[1]!.resolve(true);
  await secondConfirmed;
  assert.equal(roundTrips.confirmed(third), true);
  await roundTrips.confirm(second); // at once, with no round trip
  assert.equal(bus.pending.length, 2);
});

Deno.test("createBusRoundTrips confirms every tick given before a round trip with that one", async () => {
  const bus = manualBus();
  const roundTrips = createBusRoundTrips(bus);
  const ticks = [roundTrips.tick(), roundTrips.tick(), roundTrips.tick()];
  const confirming = ticks.map((tick) => roundTrips.confirm(tick));
  assert.equal(bus.pending.length, 1);
  bus.pending[0]!.resolve(true);
  await Promise.all(confirming);
  assert.ok(ticks.every((tick) => roundTrips.confirmed(tick)));
});

Deno.test("createBusRoundTrips confirms when the bus does not answer, and never rejects", async () => {
  const bus = manualBus();
  const roundTrips = createBusRoundTrips(bus);
  const unanswered = roundTrips.tick();
  const confirming = roundTrips.confirm(unanswered);
  bus.pending[0]!.resolve(false);
  await confirming;
  const failed = roundTrips.tick();
  const confirmingFailed = roundTrips.confirm(failed);
  bus.pending[1]!.reject(new Error("closed"));
  await confirmingFailed;
  assert.equal(roundTrips.confirmed(failed), true);
});
