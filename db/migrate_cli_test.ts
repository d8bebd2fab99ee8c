import assert from "node:assert/strict";
import { freshDatabase, TEST_DATABASE_URL } from "../tests/support/database.ts";
import { runDevTask } from "../tests/support/dev_task.ts";

Deno.test("`deno task migrate` says a migrated database is up to date", async () => {
  await using database = await freshDatabase();
  const cwd = await Deno.makeTempDir();
  try {
    const { code, stdout, stderr } = await runDevTask("migrate", {
      cwd,
      env: {
        DATABASE_URL: database.url,
      },
    });
    assert.equal(code, 0, stderr);
    assert.equal(stdout.trim(), "up to date");
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("`deno task migrate` with a bad DATABASE_URL names it in one line and exits 78", async () => {
  const cwd = await Deno.makeTempDir();
  try {
    const { code, stderr } = await runDevTask("migrate", {
      cwd,
      env: { DATABASE_URL: "mysql://db/chat" },
    });
    assert.equal(code, 78, stderr);
    assert.match(stderr, /^invalid configuration: DATABASE_URL: .+$/);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("`deno task migrate` with a database it cannot reach says so in one line and exits 1", async () => {
  const cwd = await Deno.makeTempDir();
  try {
    const { code, stderr } = await runDevTask("migrate", {
      cwd,
      // nothing listens on port 1
      env: { DATABASE_URL: "postgres://postgres@127.0.0.1:1/chat" },
    });
    assert.equal(code, 1, stderr);
    assert.match(stderr, /^could not migrate: connect ECONNREFUSED 127\.0\.0\.1:1$/);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("`deno task migrate` on a database that does not exist says so in one line and exits 1", async () => {
  const cwd = await Deno.makeTempDir();
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = "/chat_no_such_database";
  try {
    const { code, stderr } = await runDevTask("migrate", { cwd, env: { DATABASE_URL: `${url}` } });
    assert.equal(code, 1, stderr);
    assert.equal(stderr, 'could not migrate: database "chat_no_such_database" does not exist');
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});
