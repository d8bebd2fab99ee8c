import assert from "node:assert/strict";

/**
 * Runs `pattern` of tests/support/heap_churn.ts for `cycles` in a process of its own, with
 * `gc()` at hand; how many bytes the heap grew over them.
 */
async function heapGrowth(pattern: string, cycles: number): Promise<number> {
  const script = new URL("./support/heap_churn.ts", import.meta.url).pathname;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--v8-flags=--expose-gc", script, pattern, String(cycles)],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  assert.equal(code, 0, decoder.decode(stderr));
  const { grown } = JSON.parse(decoder.decode(stdout).trim().split("\n").at(-1)!);
  return grown;
}

Deno.test("a member's chats socket keeps no memory for each time the member was removed and added back", async () => {
  // 40 chats lost and taken in again 150 times: what each join held, kept, is about 1.3 kB a
  // chat, 8 MB in all
  const cycles = 150;
  const grown = await heapGrowth("member_removed_and_added", cycles);
  assert.ok(
    grown < 2_000_000,
    `the heap grew by ${grown} bytes over ${cycles} removals and additions of the member`,
  );
});
