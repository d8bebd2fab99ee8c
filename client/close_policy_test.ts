import assert from "node:assert/strict";
import { reconnectsAfter } from "./close_policy.ts";

Deno.test("reconnectsAfter() stops on 4401, 4403 and 4408 and retries on everything else", () => {
  assert.deepEqual([4401, 4403, 4408].map(reconnectsAfter), [false, false, false]);
  assert.deepEqual(
    [1006, 1012, 1013, 1011, 1001, 4429, 1009].map(reconnectsAfter),
    [true, true, true, true, true, true, true],
  );
});
