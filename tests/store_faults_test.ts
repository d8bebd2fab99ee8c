/**
 * Actions whose change PostgreSQL committed while a read after it could not be answered: the
 * change is acknowledged and broadcast, not answered `unavailable` (a retry would find it done
 * and answer `not_found`, and the other participants would learn of it only from a sweep).
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { startCluster } from "./support/service.ts";
import { waitingForLock } from "./support/database.ts";
import { joinChat, sendText } from "./support/steps.ts";
import { within } from "./support/wait.ts";

Deno.test("a deletion committed while the chats table cannot be read is acknowledged and broadcast", async () => {
  await using cluster = await startCluster({ env: { WS_RATE_PER_SECOND: "1000" } });
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  const doomed = await sendText(customer, "vend-1", "regret");
  await vendor.nextOfType("chat_message");

  const sql = postgres(cluster.databaseUrl, { max: 3, onnotice: () => {} });
  const [rowHolder, tableLocker] = [await sql.reserve(), await sql.reserve()];
  try {
    // the deletion starts (holding its lock on the chats table) and waits for the message's row
    await rowHolder`begin`;
    await rowHolder`select 1 from messages where id = ${doomed.id} for update`;
    const answer = customer.request({ action: "delete_message", message_id: doomed.id }, 15_000);
    await within(waitingForLock(sql, "%deleted_at%"), 5_000, "the deletion to wait");
    // A migration, say, asks for the whole table: it waits behind the deletion, and every
    // read of chats after it waits behind it.
    await tableLocker`begin`;
    const locked = tableLocker`lock table chats in access exclusive mode`.execute();
    await within(waitingForLock(sql, "lock table chats%"), 5_000, "the table lock to wait");
    await rowHolder`rollback`;
    await within(locked, 5_000, "the table lock once the deletion committed");
    const reply = await within(answer, 10_000, "the deletion's answer");
    await tableLocker`rollback`;
    assert.equal(reply.type, "ack", `the committed deletion was answered ${JSON.stringify(reply)}`);
    const deleted = await vendor.nextOfType("message_deleted", 5_000);
    assert.equal(deleted.message_id, doomed.id);
  } finally {
    await tableLocker`rollback`.catch(() => {});
    await rowHolder`rollback`.catch(() => {});
    rowHolder.release();
    tableLocker.release();
    await sql.end();
  }
});

Deno.test("while the database takes no writes (a failover's read-only server), a send is answered unavailable and its retry stores it once", async () => {
  await using cluster = await startCluster({
    // After a lost connection postgres.js's `end()` waits for the shutdown deadline (see
    // faults_test.ts); a short deadline keeps this test short.
    env: { WS_RATE_PER_SECOND: "1000", SHUTDOWN_TIMEOUT: "1" },
  });
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  const sql = postgres(cluster.databaseUrl, { max: 1, onnotice: () => {} });
  const database = cluster.databaseUrl.split("/").pop()!.split("?")[0]!;
  /** Ends the service's connections: those it makes again are as the database is set now. */
  const reconnect = () =>
    sql`select pg_terminate_backend(pid) from pg_stat_activity
        where datname = current_database() and pid <> pg_backend_pid()`;
  const frame = {
    action: "send_message",
    receiver_id: "vend-1",
    media_type: "text",
    content: "during the failover",
    client_id: "f-1",
  };
  try {
    await sql`alter database ${sql(database)} set default_transaction_read_only = on`;
    await reconnect();
    // the first may meet a connection still closing; every answer tells the client to retry
    for (let attempt = 0; attempt < 3; attempt++) {
      const reply = await customer.request(frame, 10_000);
      assert.equal(reply.code, "unavailable", `answered ${JSON.stringify(reply)}`);
    }
    await sql`alter database ${sql(database)} reset default_transaction_read_only`;
    await reconnect();
    let reply = await customer.request(frame, 10_000);
    for (let attempt = 0; reply.type !== "ack" && attempt < 3; attempt++) {
      assert.equal(reply.code, "unavailable", `answered ${JSON.stringify(reply)}`);
      reply = await customer.request(frame, 10_000);
    }
    assert.equal(reply.type, "ack", `answered ${JSON.stringify(reply)}`);
    assert.equal(reply.message.seq, 1);
    assert.equal((await vendor.nextOfType("chat_message", 5_000)).message.id, reply.message.id);
  } finally {
    await sql`alter database ${sql(database)} reset default_transaction_read_only`;
    await sql.end();
  }
});
