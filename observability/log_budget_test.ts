import assert from "node:assert/strict";
import { createLogBudget } from "./log_budget.ts";

Deno.test("createLogBudget lets a window's lines through, drops the rest, and the next line says how many it dropped", () => {
  let now = 0;
  const budget = createLogBudget({ lines: 2, windowMs: 1_000 }, () => now);
  assert.deepEqual([budget.take(), budget.take(), budget.take(), budget.take()], [
    0,
    0,
    undefined,
    undefined,
  ]);
  now = 999;
  assert.equal(budget.take(), undefined);
  now = 1_000;
  assert.equal(budget.take(), 3);
  assert.equal(budget.take(), 0);
  assert.equal(budget.take(), undefined);
});
