import assert from "node:assert/strict";
import { devSecrets } from "./secrets.ts";

Deno.test("devSecrets() asked by two tools at once on a fresh checkout gives both the same secrets", async () => {
  const cwd = Deno.cwd();
  const dir = await Deno.makeTempDir();
  // devSecrets() keeps them in .dev/ of the working directory, as the tools run
  Deno.chdir(dir);
  try {
    const [first, second] = await Promise.all([devSecrets(), devSecrets()]);
    assert.deepEqual(second, first);
    assert.deepEqual(await devSecrets(), first);
    // nothing but the file is left behind, readable by its owner only
    const names = (await Array.fromAsync(Deno.readDir(".dev"))).map((entry) => entry.name);
    assert.deepEqual(names, ["secrets.json"]);
    assert.equal((await Deno.stat(".dev/secrets.json")).mode! & 0o777, 0o600);
  } finally {
    Deno.chdir(cwd);
    await Deno.remove(dir, { recursive: true });
  }
});
