/**
 * A user who comes back at once after a moderator let them go (DisconnectUser, or UnbanUser
 * after BanUser) may reach an instance the event has not reached yet: the event, late, must not
 * end the new socket. Instance 1 hears NATS through a proxy the tests stall to make it late.
 */
import assert from "node:assert/strict";
import { natsCutToSecondInstance } from "./support/nats_cut.ts";
import { joinChat, sendText, stillServes } from "./support/steps.ts";
import { within } from "./support/wait.ts";
import type { TestSocket } from "./support/ws_client.ts";

const by = { moderator_id: "mod-1", reason: "spam" };

async function closeCode(socket: TestSocket): Promise<number> {
  return (await within(socket.closed, 10_000, "the socket's close")).code;
}

Deno.test("a socket opened after DisconnectUser is not closed by the disconnect arriving late", async () => {
  await using setup = await natsCutToSecondInstance({}, { grpc: true });
  const { cluster, proxy } = setup;
  const admin = await cluster.admin(0);
  const chat = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  const before = await joinChat(cluster, "alice", chat.id, 0);
  const beforeThere = await joinChat(cluster, "alice", chat.id, 1);
  await using vendor = await joinChat(cluster, "acme", chat.id, 1);

  proxy.stall("downstream");
  await admin.call("DisconnectUser", { user_id: "alice", ...by });
  assert.equal(await closeCode(before), 4408);
  await using back = await joinChat(cluster, "alice", chat.id, 1);
  proxy.restore();
  // the late event still ends the socket opened before it
  assert.equal(await closeCode(beforeThere), 4408);
  // sent after the disconnect on the bus: held while the store is asked, then let through
  await sendText(vendor, "alice", "welcome back");
  await back.nextOfType("chat_message");
  await stillServes(back);
  await sendText(back, "acme", "reconnected");
});

Deno.test("a socket opened after UnbanUser is not closed by the ban arriving late", async () => {
  await using setup = await natsCutToSecondInstance({}, { grpc: true });
  const { cluster, proxy } = setup;
  const admin = await cluster.admin(0);
  const chat = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  await using beforeThere = await joinChat(cluster, "alice", chat.id, 1);
  await using vendor = await joinChat(cluster, "acme", chat.id, 1);

  proxy.stall("downstream");
  await admin.call("BanUser", { user_id: "alice", ...by, duration_seconds: 0 });
  await admin.call("UnbanUser", { user_id: "alice", ...by });
  await using back = await joinChat(cluster, "alice", chat.id, 1);
  proxy.restore();
  // sent after the ban on the bus: held while the store is asked, then let through; the user
  // is let back in, on the socket opened before the ban as on the one opened since
  await sendText(vendor, "alice", "welcome back");
  for (const socket of [beforeThere, back]) {
    await socket.nextOfType("chat_message");
    await stillServes(socket);
  }
  await sendText(back, "acme", "unbanned");
});
