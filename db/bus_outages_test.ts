import assert from "node:assert/strict";
import postgres from "postgres";
import { ChatError } from "../chat/errors.ts";
import { freshDatabase } from "../tests/support/database.ts";
import { startTcpProxy } from "../tests/support/tcp_proxy.ts";
import { createBusOutages } from "./bus_outages.ts";

/** A migrated database of its own, and the outages of any number of instances over it. */
async function outagesDatabase() {
  const database = await freshDatabase();
  const sql = postgres(database.url, { max: 2, onnotice: () => {} });
  const errors: unknown[] = [];
  return {
    database,
    sql,
    errors,
    instance(instanceId = crypto.randomUUID()) {
      return createBusOutages(sql, { instanceId, onError: (error) => errors.push(error) });
    },
    /** The records, with how long ago each outage began, in whole seconds. */
    async records() {
      // a plain array, to compare with one
      return [
        ...await sql<Array<{ instance_id: string; seconds_ago: number }>>`
        select instance_id, round(extract(epoch from now() - lost_since))::int as seconds_ago
        from bus_outages order by instance_id`,
      ];
    },
    async [Symbol.asyncDispose]() {
      await sql.end();
      await database[Symbol.asyncDispose]();
    },
  };
}

const delivered = () => Promise.resolve(true);
const undelivered = () => Promise.resolve(false);

Deno.test("an outage an instance ended with is resynced by the next to start, back to its beginning, and its record goes", async () => {
  await using db = await outagesDatabase();
  const endedWhileCutOff = crypto.randomUUID();
  const before = db.instance(endedWhileCutOff);
  await before.lost(90_000);
  // each further attempt to reconnect writes it again, keeping the earliest beginning
  await before.lost(30_000);
  assert.deepEqual(await db.records(), [{ instance_id: endedWhileCutOff, seconds_ago: 90 }]);

  const requests: number[] = [];
  const next = db.instance();
  const lostForMs = await next.resyncLeftBehind((ms) => requests.push(ms), delivered);
  assert.equal(requests.length, 1);
  assert.equal(lostForMs, requests[0]);
  assert.ok(lostForMs! >= 90_000 && lostForMs! < 95_000, `reaches back ${lostForMs} ms`);
  assert.deepEqual(await db.records(), []);

  // the one after has nothing to ask for
  assert.equal(
    await db.instance().resyncLeftBehind((ms) => requests.push(ms), delivered),
    undefined,
  );
  assert.equal(requests.length, 1);
  assert.deepEqual(db.errors, []);
});

Deno.test("one request covers every outage left behind, reaching back to the earliest", async () => {
  await using db = await outagesDatabase();
  await db.instance().lost(20_000);
  await db.instance().lost(200_000);
  const requests: number[] = [];
  await db.instance().resyncLeftBehind((ms) => requests.push(ms), delivered);
  assert.equal(requests.length, 1);
  assert.ok(requests[0]! >= 200_000 && requests[0]! < 205_000, `reaches back ${requests[0]} ms`);
  assert.deepEqual(await db.records(), []);
});

Deno.test("a resync request NATS did not confirm leaves the records to the next start", async () => {
  await using db = await outagesDatabase();
  const endedWhileCutOff = crypto.randomUUID();
  await db.instance(endedWhileCutOff).lost(10_000);
  const requests: number[] = [];
  await db.instance().resyncLeftBehind((ms) => requests.push(ms), undelivered);
  assert.equal(requests.length, 1);
  assert.deepEqual((await db.records()).map((row) => row.instance_id), [endedWhileCutOff]);

  await db.instance().resyncLeftBehind((ms) => requests.push(ms), delivered);
  assert.equal(requests.length, 2);
  assert.deepEqual(await db.records(), []);
});

Deno.test("a resync request for outages left behind that NATS did not confirm at the start is sent again at the next reconnect", async () => {
  await using db = await outagesDatabase();
  const endedWhileCutOff = crypto.randomUUID();
  await db.instance(endedWhileCutOff).lost(60_000);
  const requests: number[] = [];
  const starting = db.instance();
  await starting.resyncLeftBehind((ms) => requests.push(ms), undelivered);
  await starting.lost(1_000);
  await starting.recovered(delivered);
  assert.equal(requests.length, 2);
  assert.ok(requests[1]! >= 60_000, `the second request reaches back ${requests[1]} ms`);
  // both settled: the one left behind, and the instance's own
  assert.deepEqual(await db.records(), []);
  // once sent, it is owed no more
  await starting.recovered(delivered);
  assert.equal(requests.length, 2);
});

Deno.test("an instance's own outage is not left behind, and its record goes once its resync request is delivered", async () => {
  await using db = await outagesDatabase();
  const self = db.instance();
  await self.lost(5_000);
  assert.equal(await self.resyncLeftBehind(() => assert.fail("no request"), delivered), undefined);
  await self.recovered(undelivered);
  assert.equal((await db.records()).length, 1, "kept while the request may be lost");
  await self.recovered(delivered);
  assert.deepEqual(await db.records(), []);
});

Deno.test("a connection lost again while the resync request goes out keeps the outage's record", async () => {
  await using db = await outagesDatabase();
  const self = db.instance();
  await self.lost(5_000);
  const confirmation = Promise.withResolvers<boolean>();
  const recovering = self.recovered(() => confirmation.promise);
  await self.lost(61_000);
  confirmation.resolve(true);
  await recovering;
  assert.equal((await db.records()).length, 1);
});

Deno.test("an instance still cut off records its outage again after another instance resynced it", async () => {
  await using db = await outagesDatabase();
  const stillCutOff = crypto.randomUUID();
  const cutOff = db.instance(stillCutOff);
  await cutOff.lost(10_000);
  await db.instance().resyncLeftBehind(() => {}, delivered);
  assert.deepEqual(await db.records(), []);
  await cutOff.lost(12_000);
  assert.deepEqual(await db.records(), [{ instance_id: stillCutOff, seconds_ago: 12 }]);
});

/**
 * A pool of one connection to `db`'s database through a proxy the test controls; `inserts` are
 * the outage records it has sent.
 */
function behindProxy(db: { database: { url: string } }) {
  const proxy = startTcpProxy(db.database.url);
  const inserts: string[] = [];
  const sql = postgres(proxy.url, {
    max: 1,
    connect_timeout: 1,
    onnotice: () => {},
    debug: (_connection, query) => {
      if (query.includes("insert into bus_outages")) inserts.push(query);
    },
  });
  return {
    proxy,
    sql,
    inserts,
    async [Symbol.asyncDispose]() {
      await sql.end();
      await proxy[Symbol.asyncDispose]();
    },
  };
}

Deno.test("with the database away a loss is reported, not thrown, and the next attempt records it", async () => {
  await using db = await outagesDatabase();
  await using proxied = behindProxy(db);
  const errors: unknown[] = [];
  const self = createBusOutages(proxied.sql, {
    instanceId: crypto.randomUUID(),
    onError: (error) => errors.push(error),
  });
  await proxied.proxy.cut();
  await self.lost(5_000);
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof ChatError && errors[0].code === "unavailable", `${errors[0]}`);
  proxied.proxy.restore();
  await self.lost(6_000);
  assert.equal(errors.length, 1);
  assert.deepEqual((await db.records()).map((row) => row.seconds_ago), [6]);
});

Deno.test("losses reported while a record waits for a slow database are written together, not queued one by one", async () => {
  await using db = await outagesDatabase();
  await using proxied = behindProxy(db);
  const { proxy, sql } = proxied;
  const self = createBusOutages(sql, {
    instanceId: crypto.randomUUID(),
    onError: (error) => assert.fail(`${error}`),
  });
  await sql`select 1`;
  proxy.stall();
  const first = self.lost(5_000);
  await proxy.held();
  // one attempt to reconnect a second, while the first record waits for the database
  const later = [6_000, 9_000, 7_000].map((ms) => self.lost(ms));
  proxy.restore();
  await Promise.all([first, ...later]);
  assert.equal(proxied.inserts.length, 2, "the first record, and one for the three after it");
  assert.deepEqual((await db.records()).map((row) => row.seconds_ago), [9]);
});
