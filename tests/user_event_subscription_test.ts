/**
 * A socket's first store read (its access, the user's sanctions) comes after the NATS server
 * has its instance's subscription to the user events: an event another instance publishes
 * between the two would be lost to it, with the socket keeping access the store no longer
 * gives. Instance 1 reaches NATS through a proxy the test stalls to keep its subscription from
 * the server.
 */
import assert from "node:assert/strict";
import { natsCutToSecondInstance } from "./support/nats_cut.ts";
import { within } from "./support/wait.ts";

Deno.test("a ban made while a socket's instance is still subscribing to the user events closes it with 4403", async () => {
  // no sweep of the sanctions to make up for a ban event lost; one connection to the store,
  // opened before the socket, so that a read not waiting for NATS is made at once
  const env = { FEED_SWEEP_SECONDS: "3600", DATABASE_POOL_SIZE: "1" };
  await using setup = await natsCutToSecondInstance(env, { grpc: true });
  const { cluster, proxy } = setup;
  const admin = await cluster.admin(0);
  const chat = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  await (await cluster.admin(1)).call("ListBans", {});

  // instance 1 has no socket yet: this one's subscription to the user events is new
  proxy.stall("upstream");
  await using socket = await cluster.openChat("alice", chat.id, 1);
  await within(proxy.held(), 10_000, "instance 1 subscribing");
  await admin.call("BanUser", { user_id: "alice", moderator_id: "mod-1", reason: "spam" });
  proxy.restore();
  assert.equal((await within(socket.closed, 10_000, "the ban's close")).code, 4403);
});
