/**
 * A signal can come while an instance is still starting: a deploy rolled back while a migration
 * waits for its lock, or the admin plane still binding while the HTTP plane already takes
 * sockets. It must stop the service as any shutdown does, not end the process as the runtime
 * does with a signal nothing listens for (or, run as PID 1 without the image's tini, ignore it).
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { MIGRATION_LOCK_KEY } from "../db/migrate.ts";
import { REPEAT_WINDOW_MS } from "../stop_signals.ts";
import { freshDatabase } from "./support/database.ts";
import { serviceEnvironment, startServiceProcess } from "./support/service_process.ts";
import { within } from "./support/wait.ts";

/**
 * Waits up to 30 s until the child of process `pid` that runs main.ts has a handler of its own
 * for SIGTERM (SigCgt in /proc, Linux); its pid and the CPU time its main thread (the one that
 * runs JavaScript) had used then, in nanoseconds, or undefined if it never did. One bash loop
 * looks, not a Deno.Command per look: Deno lets only --allow-all read another process's /proc
 * entries, and a look must take far less time than the start does.
 */
async function serviceCatchingSigterm(
  pid: number,
): Promise<{ pid: number; ranNs: number } | undefined> {
  const script = `
    while kill -0 ${pid} 2>/dev/null; do
      for children in /proc/${pid}/task/*/children; do
        for child in $(< "$children"); do
          # run, not only forked: until its exec the child has deno task's own handlers
          mapfile -d '' argv < /proc/$child/cmdline 2>/dev/null
          [[ " \${argv[*]} " == *" main.ts "* ]] || continue
          while read -r key value; do
            if [ "$key" = "SigCgt:" ] && (( (16#$value >> 14) & 1 )); then
              read -r ran _ < /proc/$child/task/$child/schedstat
              echo "$child $ran"
              exit 0
            fi
          done < /proc/$child/status
        done
      done
    done
    exit 1`;
  const command = new Deno.Command("timeout", {
    args: ["30", "bash", "-c", script],
    stdout: "piped",
  });
  const output = await command.output();
  if (output.code !== 0) return undefined;
  const [child, ranNs] = new TextDecoder().decode(output.stdout).trim().split(" ").map(Number);
  return { pid: child!, ranNs: ranNs! };
}

/**
 * Waits up to 10 s until the main thread of process `pid` has used `ns` nanoseconds of CPU
 * time (schedstat in /proc, Linux); whether it did.
 */
async function mainThreadRan(pid: number, ns: number): Promise<boolean> {
  const script = `
    while read -r ran _ < /proc/${pid}/task/${pid}/schedstat; do
      (( ran >= ${ns} )) && exit 0
    done 2>/dev/null
    exit 1`;
  const command = new Deno.Command("timeout", { args: ["10", "bash", "-c", script] });
  return (await command.output()).code === 0;
}

/**
 * A service process whose start waits for the migration lock, which the test holds: `release`
 * lets the start go on.
 */
async function startHeldAtMigrationLock(env: Record<string, string>) {
  const database = await freshDatabase();
  const sql = postgres(database.url, { max: 2, onnotice: () => {} });
  const holder = await sql.reserve();
  await holder`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
  const service = await startServiceProcess(
    { ...serviceEnvironment({ databaseUrl: database.url }), ...env },
    { waitUntilListening: false },
  );
  // the start is past its first steps once it tries the lock
  await within(
    (async () => {
      for (;;) {
        const [{ trying }] = await sql<[{ trying: number }]>`
          select count(*)::int as trying from pg_stat_activity
          where datname = current_database() and pid <> pg_backend_pid()
            and query like '%pg_try_advisory_lock%'`;
        if (trying > 0) return;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })(),
    30_000,
    "the start to try the migration lock",
  );
  return {
    service,
    release: async () => {
      await holder`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`;
    },
    async [Symbol.asyncDispose]() {
      try {
        await service[Symbol.asyncDispose]();
      } finally {
        holder.release();
        await sql.end();
        await database[Symbol.asyncDispose]();
      }
    },
  };
}

/**
 * Once the shutdown began, lets the held start go on, and asserts the service then stopped
 * cleanly: exit 0, "stopped" last.
 */
async function stopsCleanlyOnceStarted(held: Awaited<ReturnType<typeof startHeldAtMigrationLock>>) {
  const { service } = held;
  await service.waitForLog((line) => line.message === "shutting down", "the shutdown to begin");
  await held.release();
  const status = await within(service.status, 10_000, "the exit");
  assert.equal(status.code, 0, service.lines.join("\n"));
  const messages = service.logs().map((line) => line.message);
  assert.equal(messages.at(-1), "stopped");
}

Deno.test("SIGTERM while the start waits for the migration lock stops the service once it is up: exit 0, 'shutting down' then 'stopped'", async () => {
  await using held = await startHeldAtMigrationLock({ SHUTDOWN_TIMEOUT: "5" });
  const { service } = held;
  service.kill("SIGTERM");
  await stopsCleanlyOnceStarted(held);
});

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.test(`a second ${signal} during the shutdown ends the process at once: exit 128 + the signal's number, and a log line saying so`, async () => {
    // a shutdown that would wait up to 30 s for the start (held at the migration lock)
    await using held = await startHeldAtMigrationLock({ SHUTDOWN_TIMEOUT: "30" });
    const { service } = held;
    service.kill(signal);
    await service.waitForLog((line) => line.message === "shutting down", "the shutdown to begin");
    // past the window in which a repeat is taken for the first signal
    await new Promise((resolve) => setTimeout(resolve, REPEAT_WINDOW_MS + 200));
    service.kill(signal);
    const status = await within(service.status, 5_000, "the exit after the second signal");
    assert.equal(status.code, signal === "SIGTERM" ? 143 : 130, service.lines.join("\n"));
    const last = service.logs().at(-1);
    assert.equal(last?.message, "second signal: exiting without finishing the shutdown");
    assert.equal(last?.signal, signal);
  });
}

Deno.test("a Ctrl-C heard twice at once (from the terminal, and passed on by deno task) is one signal: the shutdown finishes, exit 0", async () => {
  await using held = await startHeldAtMigrationLock({ SHUTDOWN_TIMEOUT: "30" });
  const { service } = held;
  // a terminal's Ctrl-C goes to the process group: deno task and the service each hear it, and
  // deno task passes its own on
  const found = await new Deno.Command("pgrep", {
    args: ["-P", String(service.pid), "-f", "main.ts"],
  })
    .output();
  const servicePid = Number(new TextDecoder().decode(found.stdout).trim());
  assert.ok(servicePid > 0, "no service process under deno task");
  Deno.kill(servicePid, "SIGINT");
  service.kill("SIGINT");
  await stopsCleanlyOnceStarted(held);
});

Deno.test("the service listens for SIGTERM before its start logs anything, and a SIGTERM then stops it cleanly: exit 0, 'stopped'", async () => {
  await using database = await freshDatabase();
  await using service = await startServiceProcess(
    serviceEnvironment({ databaseUrl: database.url }),
    { waitUntilListening: false },
  );
  // the service process is the child of `deno task` that catches SIGTERM (deno task does too)
  const caught = await serviceCatchingSigterm(service.pid);
  assert.ok(caught, "the service never listened for SIGTERM");
  const logged = service.logs().map((line) => line.message);
  assert.deepEqual(logged, [], "the start logged before it listened for SIGTERM");
  // Deno catches SIGTERM (SigCgt) a moment before the listener that hears it is in place, and
  // ends the process on a SIGTERM that comes between (1 ms and more, when the machine is busy):
  // the signal waits until the thread that adds the listener has run on for 10 ms of CPU time,
  // far longer than adding it takes, and the start is still under way
  assert.ok(await mainThreadRan(caught.pid, caught.ranNs + 10_000_000), "the service ended");
  service.kill("SIGTERM");
  const status = await within(service.status, 10_000, "the exit");
  assert.equal(status.code, 0, service.lines.join("\n"));
  const messages = service.logs().map((line) => line.message);
  assert.ok(messages.includes("shutting down"), service.lines.join("\n"));
  assert.equal(messages.at(-1), "stopped");
});
