import assert from "node:assert/strict";

/** What the client may stand on: itself, the contract's pure schema modules, and zod. */
const ALLOWED = [
  /^client\/[a-z_]+\.ts$/,
  /^protocol\/[a-z_]+\.ts$/,
  /^chat\/(types|events)\.ts$/,
  /^ws\/frames\.ts$/,
];

Deno.test("the client library imports no server code: only the contract's schemas and zod", async () => {
  const root = new URL("../", import.meta.url);
  const { code, stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "client/mod.ts"],
    cwd: root,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert.equal(code, 0);
  const graph = JSON.parse(new TextDecoder().decode(stdout)) as {
    modules: Array<{ specifier: string }>;
  };
  const local = graph.modules
    .map((module) => module.specifier)
    .filter((specifier) => specifier.startsWith(root.href))
    .map((specifier) => specifier.slice(root.href.length));
  const outside = local.filter((path) => !ALLOWED.some((pattern) => pattern.test(path)));
  assert.deepEqual(outside, []);
  assert.ok(local.includes("ws/frames.ts"), "the client's actions are the server's schemas");
  const packages = graph.modules
    .map((module) => module.specifier)
    .filter((specifier) => specifier.startsWith("npm:"))
    .map((specifier) => /^npm:\/?(@?[^@]+)@/.exec(specifier)?.[1]);
  assert.deepEqual([...new Set(packages)], ["zod"]);
});
