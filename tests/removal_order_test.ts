/**
 * A vendor member removed on one instance, whose socket is on another: what is sent after the
 * removal answered must not reach that socket, whatever the order NATS brings the removal and
 * the event in. Instance 1 reaches NATS through a proxy the test stalls: the removal reaches it
 * late, or leaves it late.
 */
import assert from "node:assert/strict";
import {
  connectWhileEventsLate,
  messagesAndCounts,
  natsCutToSecondInstance,
  newChatWhileEventsLate,
  pagedContents,
} from "./support/nats_cut.ts";
import { joinAllChats, joinChat, refused, sendText } from "./support/steps.ts";
import { within } from "./support/wait.ts";
import type { TestCluster } from "./support/service.ts";
import type { TestSocket } from "./support/ws_client.ts";

/** The sockets of a member removed are closed (4403) or lose the chat, and got no message. */
async function assertRemovedBeforeAnyMessage(
  agent: TestSocket,
  agentAll: TestSocket,
  chatId: string,
) {
  assert.equal((await within(agent.closed, 10_000, "the removal's close")).code, 4403);
  await refused(agentAll, { action: "unread_message", chat_id: chatId }, "forbidden");
  for (const socket of [agent, agentAll]) {
    assert.deepEqual(socket.pending("chat_message"), [], "a message sent after the removal");
  }
}

/**
 * Ari, a member of acme, with a chat socket and a chats socket, and alice, acme's customer, on
 * instance `sockets`; the admin plane of instance `admin`. The sockets close with the cluster.
 */
async function memberOfAcme(cluster: TestCluster, instances: { admin: number; sockets: number }) {
  const { admin, chat } = await acmeWithAgent(cluster, instances.admin);
  return {
    admin,
    chat,
    agent: await joinChat(cluster, "ari", chat.id, instances.sockets),
    agentAll: await joinAllChats(cluster, "ari", instances.sockets),
    alice: await joinChat(cluster, "alice", chat.id, instances.sockets),
  };
}

/** Alice's chat with acme, and ari made acme's agent, through the admin plane of `instance`. */
async function acmeWithAgent(cluster: TestCluster, instance: number) {
  const admin = await cluster.admin(instance);
  const chat = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  await admin.call("AddVendorMember", {
    vendor_id: "acme",
    user_id: "ari",
    role: "VENDOR_ROLE_AGENT",
  });
  return { admin, chat };
}

const removal = { vendor_id: "acme", user_id: "ari" };

Deno.test("a message sent after RemoveVendorMember answered never reaches the removed member's sockets on an instance the removal reaches late", async () => {
  await using setup = await natsCutToSecondInstance({}, { grpc: true });
  const { cluster, proxy } = setup;
  const { admin, chat, agent, agentAll, alice } = await memberOfAcme(cluster, {
    admin: 0,
    sockets: 1,
  });

  proxy.stall("downstream");
  await admin.call("RemoveVendorMember", removal);
  await sendText(alice, "acme", "after the removal");
  proxy.restore();
  await assertRemovedBeforeAnyMessage(agent, agentAll, chat.id);
});

Deno.test("RemoveVendorMember answers once NATS has the removal, so a message sent after the answer on another instance never reaches the removed member", async () => {
  await using setup = await natsCutToSecondInstance({}, { grpc: true });
  const { cluster, proxy } = setup;
  const { admin, chat, agent, agentAll, alice } = await memberOfAcme(cluster, {
    admin: 1,
    sockets: 0,
  });

  proxy.stall("upstream");
  const removed = admin.call("RemoveVendorMember", removal);
  // what answers while the removal cannot leave its instance (for at most NATS's check timeout,
  // 2 s) lets the next message go ahead of it
  const waited = new Promise((resolve) => setTimeout(() => resolve("waiting"), 500));
  const early = await Promise.race([removed.then(() => "answered"), waited]);
  if (early === "answered") await sendText(alice, "acme", "after the removal");
  proxy.restore();
  await removed;
  await sendText(alice, "acme", "after the removal");
  await assertRemovedBeforeAnyMessage(agent, agentAll, chat.id);
  assert.equal(early, "waiting", "RemoveVendorMember answered before NATS had the removal");
});

Deno.test("a member removed while their chat socket connects, on an instance the removal reaches late, is not sent a message sent after the removal in the first page", async () => {
  await using setup = await natsCutToSecondInstance({}, { grpc: true });
  const { cluster } = setup;
  const { admin, chat } = await acmeWithAgent(cluster, 0);
  // alice's socket has instance 1 follow the chat: ari's join of its feed waits for no bus
  await using alice = await joinChat(cluster, "alice", chat.id, 1);
  // ari may see the chat; the removal and the message come before the first page is read
  await using agent = await connectWhileEventsLate(setup, {
    userId: "ari",
    chatId: chat.id,
    meanwhile: async () => {
      await admin.call("RemoveVendorMember", removal);
      await sendText(alice, "acme", "after the removal");
    },
  });
  assert.equal((await within(agent.closed, 10_000, "the removal's close")).code, 4403);
  assert.deepEqual(pagedContents(agent), [], "a message sent after the removal, in the first page");
});

Deno.test("a member removed while their chats socket takes in a new chat of the vendor, on an instance the removal reaches late, is not sent a message sent after the removal with it", async () => {
  await using setup = await natsCutToSecondInstance({}, { grpc: true });
  const { cluster } = setup;
  const { admin } = await acmeWithAgent(cluster, 0);
  await using agentAll = await joinAllChats(cluster, "ari", 1);
  // the removal, and amy's message in acme's new chat, come before ari's socket reads its history
  const chat = await newChatWhileEventsLate(setup, {
    user_id: "amy",
    vendor_id: "acme",
    meanwhile: async (chat) => {
      await admin.call("RemoveVendorMember", removal);
      await using amy = await joinChat(cluster, "amy", chat.id, 0);
      await sendText(amy, "acme", "after the removal");
    },
  });
  // answered after the take-in (the socket's frames wait for it), by the store
  await refused(agentAll, { action: "unread_message", chat_id: chat.id }, "forbidden");
  assert.deepEqual(
    messagesAndCounts(agentAll),
    { messages: [], counts: [] },
    "a message sent after the removal, or its unread count",
  );
});
