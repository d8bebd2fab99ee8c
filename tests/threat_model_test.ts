import assert from "node:assert/strict";
import { REPO_ROOT } from "./support/service_process.ts";

/**
 * docs/security.md shows each defence by the tests that prove it, named `file: "test name"`
 * (further tests of the same file as `"test name"`): a test renamed or removed would leave the
 * threat model citing proof that no longer runs.
 */
Deno.test("every test docs/security.md names is a test of the file it names", async () => {
  const doc = await Deno.readTextFile(new URL("docs/security.md", REPO_ROOT));
  const missing: string[] = [];
  let cited = 0;
  for (const line of doc.split("\n")) {
    let file: string | undefined;
    for (const [, span] of line.matchAll(/`([^`]+)`/g)) {
      const named = /^([\w./-]+\.ts): "(.+)"$/.exec(span!);
      if (named) file = named[1];
      const name = named?.[2] ?? (file ? /^"(.+)"$/.exec(span!)?.[1] : undefined);
      if (name === undefined || file === undefined) continue;
      cited++;
      const source = await Deno.readTextFile(new URL(file, REPO_ROOT));
      // a test of several backends is named `${backend.name}: ...` in its source, and cited
      // with the backend's name or without
      const titles = [`"${name}"`, `}: ${name}\``, `}: ${name.replace(/^\w+: /, "")}\``];
      if (!titles.some((title) => source.includes(title))) {
        missing.push(`${file}: "${name}"`);
      }
    }
  }
  assert.ok(cited > 50, `only ${cited} tests cited: is the format still \`file: "name"\`?`);
  assert.deepEqual(missing, []);
});
