import assert from "node:assert/strict";
import { createLocalRouter, type RouterEntry } from "./local_router.ts";

const payload = new Uint8Array([1]);

function patternsMatching(subject: string, patterns: string[]): string[] {
  const router = createLocalRouter();
  const hits: string[] = [];
  for (const pattern of patterns) router.add(pattern, () => hits.push(pattern));
  router.dispatch(subject, payload);
  return hits;
}

Deno.test("createLocalRouter() matches `*` to exactly one token and `>` to one or more", () => {
  const patterns = ["a.b.c", "a.*.c", "a.*", "a.>", "*.b.>", ">", "a.b", "a.b.c.>", "a*.b.c"];
  assert.deepEqual(patternsMatching("a.b.c", patterns), ["a.b.c", "a.*.c", "a.>", "*.b.>", ">"]);
  assert.deepEqual(patternsMatching("a.b", patterns), ["a.b", "a.*", "a.>", ">"]);
  assert.deepEqual(patternsMatching("a", patterns), [">"]);
  // A token that merely contains `*` is literal, as in NATS.
  assert.deepEqual(patternsMatching("a*.b.c", patterns), ["a*.b.c", "*.b.>", ">"]);
});

Deno.test("add() tells the first handler of a pattern and remove() the last, once", () => {
  const router = createLocalRouter();
  const one = router.add("a.*", () => {});
  const two = router.add("a.*", () => {});
  assert.equal(one.first, true);
  assert.equal(two.first, false);
  assert.deepEqual(one.remove(), { last: false });
  assert.deepEqual(one.remove(), { last: false });
  assert.deepEqual(two.remove(), { last: true });
  assert.deepEqual(two.remove(), { last: false });
  const again = router.add("a.*", () => {});
  assert.equal(again.first, true);
  // A stale entry from before must not disturb the new one.
  assert.deepEqual(two.remove(), { last: false });
  assert.deepEqual(again.remove(), { last: true });
});

Deno.test("deliver() reaches only the handlers of the given pattern", () => {
  const router = createLocalRouter();
  const hits: string[] = [];
  router.add("a.*", (_, subject) => hits.push(`a.* ${subject}`));
  router.add("a.b", (_, subject) => hits.push(`a.b ${subject}`));
  router.deliver("a.*", "a.b", payload);
  router.deliver("a.b", "a.b", payload);
  router.deliver("nobody", "nobody", payload);
  assert.deepEqual(hits, ["a.* a.b", "a.b a.b"]);
});

Deno.test("a payload published from inside a handler waits until the current one reached every handler", () => {
  const router = createLocalRouter();
  const seen: string[] = [];
  router.add("s", (data) => {
    seen.push(`first ${data[0]}`);
    if (data[0] === 1) router.dispatch("s", new Uint8Array([2]));
  });
  router.add("s", (data) => seen.push(`second ${data[0]}`));
  router.dispatch("s", new Uint8Array([1]));
  assert.deepEqual(seen, ["first 1", "second 1", "first 2", "second 2"]);
});

Deno.test("a handler added during a dispatch misses that payload, and one removed misses it too", () => {
  const router = createLocalRouter();
  const seen: string[] = [];
  let added = false;
  // Registered after the first handler, so the first one runs before it in each dispatch.
  const doomed: { entry?: RouterEntry } = {};
  router.add("s.*", () => {
    seen.push("first");
    if (!added) {
      added = true;
      router.add("s.*", () => seen.push("late"));
    }
    doomed.entry?.remove();
  });
  doomed.entry = router.add("s.*", () => seen.push("removed"));
  router.dispatch("s.x", payload);
  router.dispatch("s.x", payload);
  assert.deepEqual(seen, ["first", "first", "late"]);
});

Deno.test("a throwing handler is reported as internal and the others still run", () => {
  const errors: unknown[] = [];
  const router = createLocalRouter({ onError: (error) => errors.push(error) });
  const seen: string[] = [];
  router.add("s", () => {
    throw new Error("bug");
  });
  router.add("s", () => seen.push("after"));
  router.dispatch("s", payload);
  assert.deepEqual(seen, ["after"]);
  assert.equal(errors.length, 1);
  assert.match(String(errors[0]), /a bus handler for s threw/);
});
