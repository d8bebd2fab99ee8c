import assert from "node:assert/strict";
import { runDevTask } from "../tests/support/dev_task.ts";

Deno.test("`deno task dev` with a bad setting names it in one line and exits 78", async () => {
  const cwd = await Deno.makeTempDir();
  try {
    const { code, stderr } = await runDevTask("dev", { cwd, env: { LOG_LEVEL: "loud" } });
    assert.equal(code, 78, stderr);
    assert.match(stderr, /^invalid configuration: LOG_LEVEL: .+$/);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("`deno task dev` on an embedded database another process holds says so in one line", async () => {
  const cwd = await Deno.makeTempDir();
  // held as `deno task dev` or `seed` holds it (db/embedded.ts): a lock file beside the directory
  await Deno.mkdir(`${cwd}/.dev`);
  using lock = await Deno.open(`${cwd}/.dev/pgdata.lock`, { create: true, write: true });
  assert.ok(await lock.tryLock(true));
  try {
    const { code, stderr } = await runDevTask("dev", { cwd, env: {} });
    assert.equal(code, 2, stderr);
    assert.match(stderr, /^the embedded database in \S+ is open in another process.*$/);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

for (const task of ["dev", "seed", "migrate"]) {
  Deno.test(`\`deno task ${task}\` with DATA_DIR outside .dev/, where it may not write, says so in one line`, async () => {
    const cwd = await Deno.makeTempDir();
    try {
      const { code, stderr } = await runDevTask(task, { cwd, env: { DATA_DIR: `${cwd}/pgdata` } });
      assert.equal(code, 78, stderr);
      assert.match(stderr, /^invalid configuration: DATA_DIR: .*\.dev\/.*$/);
    } finally {
      await Deno.remove(cwd, { recursive: true });
    }
  });
}
