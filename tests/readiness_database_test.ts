/**
 * What `/readyz` and gRPC health say about the database beyond "it answers": a database that
 * takes no writes makes the instance not ready.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { TEST_DATABASE_URL } from "./support/database.ts";
import { readyz } from "./support/readyz.ts";
import { startCluster, type TestCluster } from "./support/service.ts";

/** After a lost connection postgres.js's `end()` waits for the shutdown deadline: kept short. */
const settings = { SHUTDOWN_TIMEOUT: "1" };

/**
 * Asks `/readyz` again until `wanted` holds for the answer, or fails after `ms`. Each ask is a
 * real round of questions; the first after connections were ended may meet a dying one.
 */
async function readyzUntil(
  cluster: TestCluster,
  wanted: (answer: Awaited<ReturnType<typeof readyz>>) => boolean,
  what: string,
  ms = 5_000,
) {
  const deadline = AbortSignal.timeout(ms);
  let answer = await readyz(cluster.main.httpUrl);
  while (!wanted(answer) && !deadline.aborted) answer = await readyz(cluster.main.httpUrl);
  assert.ok(wanted(answer), `timed out waiting for ${what}; last: ${JSON.stringify(answer)}`);
  return answer;
}

/** Sets `default_transaction_read_only` of the cluster's own database and ends its sessions, so
 * that the service's connections come back with the setting. */
async function setReadOnly(cluster: TestCluster, readOnly: boolean) {
  const name = new URL(cluster.databaseUrl).pathname.slice(1);
  const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(
      readOnly
        ? `alter database ${name} set default_transaction_read_only = on`
        : `alter database ${name} reset default_transaction_read_only`,
    );
    await admin`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${name}`;
  } finally {
    await admin.end();
  }
}

Deno.test("/readyz and gRPC health answer not ready, saying the database is read-only, while it takes no writes, and ready once it does again", async () => {
  await using cluster = await startCluster({ nats: false, grpc: true, env: settings });
  const admin = await cluster.admin(0, { token: null });
  assert.equal((await readyz(cluster.main.httpUrl)).status, 200);

  await setReadOnly(cluster, true);
  const readOnly = await readyzUntil(
    cluster,
    ({ status, body }) => status === 503 && body.reason !== "not answering: database",
    "/readyz to say the database is read-only",
  );
  assert.deepEqual(readOnly.body, {
    ready: false,
    checks: { database: false },
    reason: "database: read-only (default_transaction_read_only is on)",
  });
  assert.equal(await admin.health(), "NOT_SERVING");

  await setReadOnly(cluster, false);
  await readyzUntil(cluster, ({ status }) => status === 200, "/readyz to be ready again");
  assert.equal(await admin.health(), "SERVING");
});

/** Waits until `count` sessions of the cluster's database wait for a lock. */
async function untilWaitingOnLocks(cluster: TestCluster, count: number) {
  const sql = postgres(cluster.databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const deadline = AbortSignal.timeout(5_000);
    let waiting = 0;
    while (waiting < count && !deadline.aborted) {
      const [row] = await sql<Array<{ waiting: number }>>`
        select count(*)::int as waiting from pg_stat_activity
        where datname = current_database() and wait_event_type = 'Lock'`;
      waiting = row!.waiting;
    }
    assert.ok(waiting >= count, `only ${waiting} of ${count} sessions came to wait on the lock`);
  } finally {
    await sql.end();
  }
}

Deno.test("/readyz stays ready while slow queries hold every connection of the pool", async () => {
  await using cluster = await startCluster({
    nats: false,
    env: { ...settings, DATABASE_POOL_SIZE: "2" },
  });
  const chat = cluster.main.service.chat;
  await chat.createChat("alice", "acme");
  // a long transaction holds the chats table: the pool's listings wait for it, as slow admin
  // queries would
  const locker = postgres(cluster.databaseUrl, { max: 1, onnotice: () => {} });
  const locked = Promise.withResolvers<void>();
  const released = Promise.withResolvers<void>();
  const holding = locker.begin(async (tx) => {
    await tx`lock table chats in access exclusive mode`;
    locked.resolve();
    await released.promise;
  });
  await locked.promise;
  const slow = Array.from({ length: 4 }, () => chat.listChats("alice").catch(() => undefined));
  await untilWaitingOnLocks(cluster, 2);

  const answer = await readyz(cluster.main.httpUrl);
  released.resolve();
  await holding;
  await Promise.all(slow);
  await locker.end();
  assert.deepEqual(answer, { status: 200, body: { ready: true, checks: { database: true } } });
});
