import assert from "node:assert/strict";
import { createLossClock, UNNOTICED_LOSS_MS } from "./nats_bus.ts";

Deno.test("a reconnect reports the outage and the time a silent loss can go unnoticed", () => {
  let now = 1_000_000;
  const losses = createLossClock(() => now);
  losses.disconnected();
  now += 2_000;
  assert.equal(losses.lostFor(), 2_000 + UNNOTICED_LOSS_MS, "so far");
  now += 3_000;
  assert.equal(losses.reconnected(), 5_000 + UNNOTICED_LOSS_MS);

  // up long enough for its resync to have gone out: the next loss counts from its own start
  now += UNNOTICED_LOSS_MS + 1;
  losses.disconnected();
  now += 2_000;
  assert.equal(losses.reconnected(), 2_000 + UNNOTICED_LOSS_MS);
});

Deno.test("a connection that drops again soon after a reconnect keeps counting from the earlier loss", () => {
  let now = 1_000_000;
  const losses = createLossClock(() => now);
  losses.disconnected();
  now += 90_000;
  losses.reconnected();
  // the resync request of that reconnect may have been lost with this drop
  now += 1_000;
  losses.disconnected();
  now += 3_000;
  assert.equal(losses.reconnected(), 94_000 + UNNOTICED_LOSS_MS);
  // a reconnect reported twice (a failed attempt) covers the same loss again
  now += 500;
  assert.equal(losses.reconnected(), 94_500 + UNNOTICED_LOSS_MS);
});
