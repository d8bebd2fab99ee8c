/**
 * The service behind PgBouncer in session mode, which refuses the message writer's
 * `lock_timeout` startup parameter unless told to ignore it. CI installs Debian's pgbouncer
 * (.ci/run); without /usr/sbin/pgbouncer the test is skipped, saying so.
 */
import assert from "node:assert/strict";
import { hasPgBouncer, PGBOUNCER_PATH, startPgBouncer } from "./support/pgbouncer.ts";
import { startCluster } from "./support/service.ts";
import { joinChat, messageWithSeq, sendText } from "./support/steps.ts";

const pgBouncerMissing = !hasPgBouncer();
if (pgBouncerMissing) {
  console.warn(
    `%ctests/pgbouncer_test.ts is SKIPPED: no PgBouncer at ${PGBOUNCER_PATH}; ` +
      "`apt-get install -y pgbouncer` to run it",
    "color: yellow",
  );
}

Deno.test({
  name:
    "behind PgBouncer in session mode, which refuses lock_timeout as a startup parameter, a message is acknowledged and delivered",
  ignore: pgBouncerMissing,
  async fn() {
    await using cluster = await startCluster({ instances: 0, nats: false });
    await using bouncer = await startPgBouncer(cluster.databaseUrl);
    const instance = await cluster.startInstance({ DATABASE_URL: bouncer.url });
    // ended before PgBouncer is, so that its pools close on live connections
    try {
      const chat = await instance.service.chat.createChat("cust-1", "vend-1");
      await using customer = await joinChat(cluster, "cust-1", chat.id);
      await using vendor = await joinChat(cluster, "vend-1", chat.id);
      const sent = await sendText(customer, "vend-1", "through the pooler");
      assert.equal(sent.seq, 1);
      const delivered = await messageWithSeq(vendor, 1);
      assert.equal(delivered.message.content, "through the pooler");
    } finally {
      await instance.service.close();
    }
  },
});
