import assert from "node:assert/strict";
import postgres from "postgres";
import { ChatError } from "../chat/errors.ts";
import type { ChatService } from "../chat/service.ts";
import type { Chat } from "../chat/types.ts";
import { startCluster } from "./support/service.ts";
import {
  acked,
  agentWatching,
  framesBetween,
  holdAnswers,
  joinAllChats,
  joinChat,
  messageWithSeq,
  refused,
  sendText,
} from "./support/steps.ts";
import type { TestSocket } from "./support/ws_client.ts";

/**
 * Closes `leaving` and shows `watcher` is told no typing for it: none up to a message `writer`
 * sends `to` after the close.
 */
async function closesUntold(
  leaving: TestSocket,
  watcher: TestSocket,
  barrier: { writer: TestSocket; to: string },
) {
  const mark = watcher.frames.length;
  leaving.close();
  await leaving.closed;
  const sent = await sendText(barrier.writer, barrier.to, "barrier");
  const seen = framesBetween(watcher, mark, await messageWithSeq(watcher, sent.seq));
  assert.deepEqual(seen.filter((frame) => frame.type === "typing"), []);
}

Deno.test("typing reaches the other participants' sockets on both endpoints", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  const chat = await service.createChat("cust-1", "vend-1");
  await service.addVendorMember("vend-1", "agent-1", "agent");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  await using vendorAll = await joinAllChats(cluster, "vend-1");
  await using agent = await joinChat(cluster, "agent-1", chat.id);
  await using agentAll = await joinAllChats(cluster, "agent-1");

  await acked(customer, { action: "typing", is_typing: true });
  for (const socket of [vendor, vendorAll, agent, agentAll]) {
    assert.deepEqual(await socket.nextOfType("typing"), {
      type: "typing",
      chat_id: chat.id,
      user_id: "cust-1",
      is_typing: true,
    });
  }
  await acked(customer, { action: "typing", is_typing: false });
  for (const socket of [vendor, vendorAll, agent, agentAll]) {
    assert.equal((await socket.nextOfType("typing")).is_typing, false);
  }
});

Deno.test("typing never reaches the typer's own sockets, on either endpoint", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  const chat = await service.createChat("cust-1", "vend-1");
  await service.addVendorMember("vend-1", "agent-1", "agent");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  await using vendorAgain = await joinChat(cluster, "vend-1", chat.id);
  await using vendorAll = await joinAllChats(cluster, "vend-1");
  await using agent = await joinChat(cluster, "agent-1", chat.id);
  const own = [vendor, vendorAgain, vendorAll];
  const marks = own.map((socket) => socket.frames.length);

  await acked(vendor, { action: "typing", is_typing: true });
  await acked(vendorAll, { action: "typing", chat_id: chat.id, is_typing: true });
  assert.equal(
    (await agent.nextOfType("typing")).user_id,
    "vend-1",
    "a member is another participant",
  );
  assert.equal((await customer.nextOfType("typing")).user_id, "vend-1");
  assert.equal((await customer.nextOfType("typing")).user_id, "vend-1");

  // barrier: a message sent after the typing reaches every socket after it
  const barrier = await sendText(customer, "vend-1", "barrier");
  for (const [index, socket] of own.entries()) {
    const seen = framesBetween(socket, marks[index]!, await messageWithSeq(socket, barrier.seq));
    assert.ok(
      !seen.some((frame) => frame.type === "typing"),
      `the typer's socket ${index} got ${JSON.stringify(seen)}`,
    );
  }
});

Deno.test("typing is never stored", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  await acked(customer, { action: "typing", is_typing: true });
  await vendor.nextOfType("typing");
  await using again = await cluster.openChat("vend-1", chat.id);
  assert.deepEqual((await again.nextOfType("latest_chat")).messages, []);
  assert.equal((await again.nextOfType("unread_messages")).count, 0);
  const { chats } = await (await cluster.openChats("vend-1")).nextOfType("chats");
  assert.equal(chats[0].last_message, null);
});

Deno.test("a socket that goes while its user is typing tells the others they stopped, on both endpoints", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  const stopped = (userId: string) => ({
    type: "typing",
    chat_id: chat.id,
    user_id: userId,
    is_typing: false,
  });

  // a closed tab, a phone that lost its network: no `is_typing: false` will come from it
  await using leaving = await joinChat(cluster, "cust-1", chat.id);
  await acked(leaving, { action: "typing", is_typing: true });
  assert.equal((await vendor.nextOfType("typing")).is_typing, true);
  leaving.close();
  assert.deepEqual(await vendor.nextOfType("typing"), stopped("cust-1"));

  await using vendorAll = await joinAllChats(cluster, "vend-1");
  await acked(vendorAll, { action: "typing", chat_id: chat.id, is_typing: true });
  assert.equal((await customer.nextOfType("typing")).is_typing, true);
  vendorAll.close();
  assert.deepEqual(await customer.nextOfType("typing"), stopped("vend-1"));

  // one that said it stopped says nothing more when it goes
  await using quiet = await joinChat(cluster, "cust-1", chat.id);
  await acked(quiet, { action: "typing", is_typing: true });
  await acked(quiet, { action: "typing", is_typing: false });
  assert.equal((await vendor.nextOfType("typing")).is_typing, true);
  assert.equal((await vendor.nextOfType("typing")).is_typing, false);
  await closesUntold(quiet, vendor, { writer: customer, to: "vend-1" });
});

Deno.test("a typing frame still being answered when its socket goes is not told after the socket's stop", async () => {
  await using cluster = await startCluster();
  await using typer = await joinAllChats(cluster, "cust-1");
  const sql = postgres(cluster.databaseUrl, { max: 2, onnotice: () => {} });
  try {
    // a chat the socket does not know (made an hour ago, out of every sweep's window): its
    // typing asks the store whether the user is in it
    const [{ id: chatId }] = await sql<[{ id: string }]>`
      insert into chats (user_id, vendor_id, created_at, updated_at)
      values ('cust-1', 'vend-1', now() - interval '1 hour', now() - interval '1 hour')
      returning id`;
    await using vendor = await joinChat(cluster, "vend-1", chatId);
    const mark = vendor.frames.length;
    // the store's answer is held while the socket goes
    await sql.begin(async (tx) => {
      await tx`lock table vendor_members in access exclusive mode`;
      typer.send({ action: "typing", request_id: "t1", chat_id: chatId, is_typing: true });
      await new Promise((resolve) => setTimeout(resolve, 300));
      typer.close();
      await typer.closed;
      await new Promise((resolve) => setTimeout(resolve, 300));
    });
    // the answer comes now; a `true` said after the socket's `false` would stay up for good
    await vendor.nextOfType("typing", 2_000).catch(() => undefined);
    const typing = vendor.frames.slice(mark).filter((frame) => frame.type === "typing");
    assert.notEqual(typing.at(-1)?.is_typing, true, JSON.stringify(typing));
  } finally {
    await sql.end();
  }
});

Deno.test("a member removed from the vendor while typing in its chat on a chats socket that stays open tells the others they stopped", async () => {
  await using cluster = await startCluster();
  const { chat, customer, agentAll } = await agentWatching(cluster);
  await acked(agentAll, { action: "typing", chat_id: chat.id, is_typing: true });
  assert.equal((await customer.nextOfType("typing")).is_typing, true);

  await cluster.main.service.chat.removeVendorMember("vend-1", "agent-1");
  // the chats socket stays open (with the agent's own chats, if any), and may no longer say
  // anything in this one: a `true` left standing would show the agent typing until it closes
  assert.deepEqual(await customer.nextOfType("typing"), {
    type: "typing",
    chat_id: chat.id,
    user_id: "agent-1",
    is_typing: false,
  });
  await refused(
    agentAll,
    { action: "typing", chat_id: chat.id, is_typing: false },
    "forbidden",
  );
});

/**
 * A new chat of cust-1 with vend-1 that the chats sockets fail to take in at first (tried again a
 * second later): they do not see it yet, and a typing there is checked in the store.
 */
async function chatNotTakenIn(service: ChatService): Promise<Chat> {
  const memberships = service.memberships;
  const failed = Promise.withResolvers<void>();
  Object.assign(service, {
    memberships: () => {
      Object.assign(service, { memberships });
      failed.resolve();
      return Promise.reject(new ChatError("unavailable", "the store is away for this test"));
    },
  });
  const chat = await service.createChat("cust-1", "vend-1");
  await failed.promise;
  return chat;
}

Deno.test("a member removed from the vendor while typing in a chat its chats socket had not taken in yet tells the others they stopped", async () => {
  await using cluster = await startCluster({ nats: false });
  const service = cluster.main.service.chat;
  await service.addVendorMember("vend-1", "agent-1", "agent");
  await using agentAll = await joinAllChats(cluster, "agent-1");
  const chat = await chatNotTakenIn(service);
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await acked(agentAll, { action: "typing", chat_id: chat.id, is_typing: true });
  assert.equal((await customer.nextOfType("typing")).is_typing, true);

  await service.removeVendorMember("vend-1", "agent-1");
  // the socket may say nothing there any more: a `true` left standing would show the agent
  // typing until it closes
  assert.deepEqual(await customer.nextOfType("typing"), {
    type: "typing",
    chat_id: chat.id,
    user_id: "agent-1",
    is_typing: false,
  });
});

Deno.test("a typing checked in the store while its member was removed from the vendor is refused, not told", async () => {
  await using cluster = await startCluster({ nats: false });
  const service = cluster.main.service.chat;
  const other = await service.createChat("cust-2", "vend-1");
  await service.addVendorMember("vend-1", "agent-1", "agent");
  await using agentAll = await joinAllChats(cluster, "agent-1");
  // closed as the agent's removal reaches the instance's sockets
  await using agentOther = await joinChat(cluster, "agent-1", other.id);
  const chat = await chatNotTakenIn(service);
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  // the agent is a member as the typing's chat is read, and no longer once it is answered
  const membership = holdAnswers(service, "membership");
  agentAll.send({ action: "typing", chat_id: chat.id, is_typing: true, request_id: "typing" });
  await membership.read;
  await service.removeVendorMember("vend-1", "agent-1");
  assert.equal((await agentOther.closed).code, 4403);
  membership.release();
  const reply = await agentAll.next((frame) => frame.request_id === "typing", "the typing's reply");
  assert.equal(reply.code, "forbidden", JSON.stringify(reply));
  // what the customer was told before a message of hers: no `true` left standing, which would
  // show the agent typing until the chats socket closes
  const message = await sendText(customer, "vend-1", "anyone there?");
  await messageWithSeq(customer, message.seq);
  const typing = customer.frames.filter((frame) => frame.type === "typing");
  assert.notEqual(typing.at(-1)?.is_typing, true, JSON.stringify(typing));
});

Deno.test("a socket whose user typed on another device since says nothing for them when it goes, on any instance", async () => {
  await using cluster = await startCluster({ instances: 2 });
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using vendor = await joinChat(cluster, "vend-1", chat.id, 0);
  await using laptop = await joinChat(cluster, "cust-1", chat.id, 0);
  await using phone = await joinChat(cluster, "cust-1", chat.id, 1);
  await using tablet = await joinAllChats(cluster, "cust-1", 0);

  // she starts on the laptop, goes on on the phone, and closes the laptop: still typing
  await acked(laptop, { action: "typing", is_typing: true });
  assert.equal((await vendor.nextOfType("typing")).is_typing, true);
  await acked(phone, { action: "typing", is_typing: true });
  assert.equal((await vendor.nextOfType("typing")).is_typing, true);
  await closesUntold(laptop, vendor, { writer: phone, to: "vend-1" });

  // the phone had the last word: when it goes, she stopped
  await acked(tablet, { action: "typing", chat_id: chat.id, is_typing: false });
  assert.equal((await vendor.nextOfType("typing")).is_typing, false);
  await acked(phone, { action: "typing", is_typing: true });
  assert.equal((await vendor.nextOfType("typing")).is_typing, true);
  phone.close();
  assert.deepEqual(await vendor.nextOfType("typing"), {
    type: "typing",
    chat_id: chat.id,
    user_id: "cust-1",
    is_typing: false,
  });
});
