import assert from "node:assert/strict";
import { REPO_ROOT } from "./support/service_process.ts";

/** `text` as a regular expression that matches it literally. */
const literally = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * Whether `source` declares a test titled `name`: the first argument of `Deno.test`, `test` or
 * `t.step`, or the `name` of an options object, not any string that happens to hold the words
 * (an assertion's message left behind by a renamed test). A test of several backends is named
 * `${backend.name}: ...` in its source, and cited with the backend's name or without.
 */
function declaresTest(source: string, name: string): boolean {
  const titles = [name, name.replace(/^\w+: /, "")].map(literally).join("|");
  const title = `(?:"${literally(name)}"|\`\\$\\{[^}]+\\}: (?:${titles})\`)`;
  return new RegExp(`(?:\\b(?:test|step)\\(|\\bname:)\\s*${title}`).test(source);
}

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
      if (!declaresTest(source, name)) missing.push(`${file}: "${name}"`);
    }
  }
  assert.ok(cited > 50, `only ${cited} tests cited: is the format still \`file: "name"\`?`);
  assert.deepEqual(missing, []);
});

/**
 * Files named in the threat model (a test file cited whole, `ws/frames.ts` as where a check is
 * made) and in the README: one moved or deleted leaves the reader looking for what is not there.
 */
Deno.test("every file of the repository docs/security.md and README.md name exists", async () => {
  const missing: string[] = [];
  let named = 0;
  for (const doc of ["docs/security.md", "README.md"]) {
    const text = await Deno.readTextFile(new URL(doc, REPO_ROOT));
    // a path in the tree (not `.dev/...`, `../shared/...`, nor a bare file name) with its kind
    for (const [, path] of text.matchAll(/`([a-z][\w-]*(?:\/[\w.-]+)+\.[a-z]+)(?::[^`]*)?`/g)) {
      named++;
      try {
        await Deno.stat(new URL(path!, REPO_ROOT));
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
        missing.push(`${doc}: ${path}`);
      }
    }
  }
  assert.ok(named > 50, `only ${named} files named: is the format still \`dir/file.ts\`?`);
  assert.deepEqual(missing, []);
});
