import assert from "node:assert/strict";

Deno.test("rawInsertRate() gives psql and pgbench the password in the database URL", async () => {
  // stand-ins on the PATH that record what they were given; pgbench answers with a rate
  const bin = await Deno.makeTempDir();
  const seen = `${bin}/seen`;
  for (const name of ["psql", "pgbench"]) {
    await Deno.writeTextFile(
      `${bin}/${name}`,
      `#!/bin/sh\necho "${name} $PGPASSWORD" >> ${seen}\n` +
        (name === "pgbench" ? `echo "tps = 1234.5 (without initial connection time)"\n` : ""),
      { mode: 0o755 },
    );
  }
  try {
    // in a process of its own: the PATH is this process's, shared by every test running in it
    const run = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { rawInsertRate } from "${import.meta.resolve("./pgbench.ts")}";
         console.log(await rawInsertRate("postgres://bench:s%40cret@127.0.0.1:5432/chat", 1));`,
      ],
      env: { PATH: `${bin}:${Deno.env.get("PATH")}` },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(run.stderr);
    assert.equal(new TextDecoder().decode(run.stdout), "1235\n", stderr);
    // a server that asks for a password would otherwise have psql prompt on the terminal
    assert.equal(
      await Deno.readTextFile(seen),
      "psql s@cret\npgbench s@cret\npsql s@cret\n",
    );
  } finally {
    await Deno.remove(bin, { recursive: true });
  }
});
