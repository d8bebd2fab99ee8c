import assert from "node:assert/strict";
import fc from "fast-check";
import { SeqRanges } from "./seq_ranges.ts";

Deno.test("SeqRanges holds exactly the seqs added, in any order", () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 60 }), { maxLength: 80 }), (seqs) => {
      const ranges = new SeqRanges();
      for (const seq of seqs) ranges.add(seq);
      const added = new Set(seqs);
      for (let seq = 0; seq <= 61; seq++) assert.equal(ranges.has(seq), added.has(seq), `${seq}`);
      // as few ranges as the seqs allow: one per run of consecutive seqs
      const runs = [...added].filter((seq) => !added.has(seq - 1)).length;
      assert.equal(ranges.ranges, runs);
    }),
  );
});

Deno.test("SeqRanges keeps reads that come in order as one range", () => {
  const ranges = new SeqRanges();
  for (let seq = 1; seq <= 10_000; seq++) ranges.add(seq);
  assert.equal(ranges.ranges, 1);
  assert.ok(ranges.has(1) && ranges.has(10_000) && !ranges.has(10_001) && !ranges.has(0));
});
