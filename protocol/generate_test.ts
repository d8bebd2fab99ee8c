import assert from "node:assert/strict";
import { runDevTask } from "../tests/support/dev_task.ts";

// Run from a scratch directory, where the task's permissions (docs/protocol, relative) let it
// write nothing of the repository's: a run that went on to write would fail.
for (const args of [["--help"], ["-h"]]) {
  Deno.test(`\`deno task protocol ${args[0]}\` says what it does and writes nothing`, async () => {
    const cwd = await Deno.makeTempDir();
    try {
      const help = await runDevTask("protocol", { cwd, env: {}, args });
      assert.equal(help.code, 0, help.stderr);
      assert.match(help.stdout, /^usage: deno task protocol \[--check\]\n/);
    } finally {
      await Deno.remove(cwd, { recursive: true });
    }
  });
}

Deno.test("`deno task protocol` refuses an argument it does not take, rather than writing", async () => {
  const cwd = await Deno.makeTempDir();
  try {
    // a mistyped --check, which would otherwise rewrite the documents it was to check
    const typo = await runDevTask("protocol", { cwd, env: {}, args: ["--chek"] });
    assert.equal(typo.code, 2, typo.stderr);
    assert.match(typo.stderr, /^--chek: [^\n]+\nusage: deno task protocol \[--check\]/);
    assert.equal(typo.stdout, "");
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});
