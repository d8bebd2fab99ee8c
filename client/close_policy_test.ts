import assert from "node:assert/strict";
import { reconnectsAfter } from "./close_policy.ts";

Deno.test("reconnectsAfter() stops on 4401, 4403 and 4408 and retries on everything else", () => {
  assert.deepEqual([4401, 4403, 4408].map((code) => reconnectsAfter(code)), [false, false, false]);
  assert.deepEqual(
    [1006, 1012, 1013, 1011, 1001, 4429, 1009].map((code) => reconnectsAfter(code)),
    [true, true, true, true, true, true, true],
  );
});

Deno.test("reconnectsAfter() retries a 4401 only when a new token will be asked for", () => {
  assert.equal(reconnectsAfter(4401, { renewsToken: true }), true);
  assert.equal(reconnectsAfter(4401, { renewsToken: false }), false);
  assert.equal(reconnectsAfter(4403, { renewsToken: true }), false);
});
