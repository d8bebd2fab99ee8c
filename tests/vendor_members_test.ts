import assert from "node:assert/strict";
import postgres from "postgres";
import { configureLogging } from "../observability/log.ts";
import { waitingForLock } from "./support/database.ts";
import { startCluster } from "./support/service.ts";
import {
  acked,
  askUnread,
  holdAnswers,
  joinAllChats,
  joinChat,
  messageWithSeq,
  refused,
  sendText,
} from "./support/steps.ts";
import { within } from "./support/wait.ts";
import type { Frame } from "./support/ws_client.ts";

Deno.test("a vendor member connects to the vendor's chat and gets its history and unread", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  const chat = await service.createChat("cust-1", "vend-1");
  await service.addVendorMember("vend-1", "agent-1", "agent");
  {
    await using customer = await joinChat(cluster, "cust-1", chat.id);
    await sendText(customer, "vend-1", "hello vendor");
  }
  await using agent = await cluster.openChat("agent-1", chat.id);
  const latest = await agent.nextOfType("latest_chat");
  assert.deepEqual(latest.messages.map((message: Frame) => message.content), ["hello vendor"]);
  const unread = await agent.nextOfType("unread_messages");
  assert.equal(unread.count, 1);
});

Deno.test("a vendor member receives the customer's messages and answers for the vendor", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  const chat = await service.createChat("cust-1", "vend-1");
  await service.addVendorMember("vend-1", "owner-1", "owner");
  await service.addVendorMember("vend-1", "agent-1", "agent");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  await using owner = await joinChat(cluster, "owner-1", chat.id);
  await using agent = await joinChat(cluster, "agent-1", chat.id);

  const question = await sendText(customer, "agent-1", "for the agent");
  for (const socket of [vendor, owner, agent]) {
    assert.deepEqual((await socket.nextOfType("chat_message")).message, question);
    assert.deepEqual((await socket.nextOfType("unread_messages")).messages, [question]);
  }
  const answer = await sendText(agent, "cust-1", "the agent answers");
  assert.equal(answer.sender_id, "agent-1");
  assert.deepEqual((await messageWithSeq(customer, answer.seq)).message, answer);
  assert.deepEqual((await customer.nextOfType("unread_messages")).messages, [answer]);
  await acked(owner, { action: "read_message", message_id: question.id });
  assert.equal((await customer.nextOfType("message_read")).reader_id, "owner-1");
  assert.equal((await askUnread(vendor)).count, 0);
});

Deno.test("a vendor member may not send to the vendor or another member", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  const chat = await service.createChat("cust-1", "vend-1");
  await service.addVendorMember("vend-1", "agent-1", "agent");
  await service.addVendorMember("vend-1", "agent-2", "agent");
  await using agent = await joinChat(cluster, "agent-1", chat.id);
  for (const receiver of ["vend-1", "agent-2", "agent-1", "stranger"]) {
    await refused(agent, {
      action: "send_message",
      receiver_id: receiver,
      media_type: "text",
      content: "internal note",
    }, "invalid_payload");
  }
});

Deno.test("a vendor member cannot connect to another vendor's chats", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  const other = await service.createChat("cust-1", "vend-2");
  await service.addVendorMember("vend-1", "agent-1", "agent");
  await using socket = await cluster.openChat("agent-1", other.id);
  assert.equal((await within(socket.closed, 5_000, "the close")).code, 4403);
  await using all = await cluster.openChats("agent-1");
  assert.deepEqual((await all.nextOfType("chats")).chats, []);
});

Deno.test("removing a vendor member closes their chat socket with 4403 and keeps them out", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  const chat = await service.createChat("cust-1", "vend-1");
  await service.addVendorMember("vend-1", "agent-1", "agent");
  await service.addVendorMember("vend-1", "agent-2", "agent");
  await using agent = await joinChat(cluster, "agent-1", chat.id);
  await using colleague = await joinChat(cluster, "agent-2", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);

  await service.removeVendorMember("vend-1", "agent-1");
  assert.equal((await within(agent.closed, 5_000, "the member's socket to close")).code, 4403);
  await using again = await cluster.openChat("agent-1", chat.id);
  assert.equal((await within(again.closed, 5_000, "the close")).code, 4403);

  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await refused(customer, {
    action: "send_message",
    receiver_id: "agent-1",
    media_type: "text",
    content: "to a former member",
  }, "invalid_payload");
  const sent = await sendText(customer, "agent-2", "still here?");
  assert.equal((await colleague.nextOfType("chat_message")).message.id, sent.id);
  assert.equal((await vendor.nextOfType("chat_message")).message.id, sent.id);
});

Deno.test("a removed member's chats socket loses the vendor's chats but keeps its own", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  const vendorChat = await service.createChat("cust-1", "vend-1");
  const ownChat = await service.createChat("agent-1", "vend-2");
  await service.addVendorMember("vend-1", "agent-1", "agent");
  await using agentAll = await joinAllChats(cluster, "agent-1");
  await using customer = await joinChat(cluster, "cust-1", vendorChat.id);
  await using shop = await joinChat(cluster, "vend-2", ownChat.id);

  await service.removeVendorMember("vend-1", "agent-1");
  const { chats: left } = await agentAll.nextOfType("chats");
  assert.deepEqual(left.map((row: Frame) => row.chat_id), [ownChat.id]);
  const mark = agentAll.frames.length;
  await sendText(customer, "vend-1", "not for the former member");
  await refused(agentAll, {
    action: "send_message",
    chat_id: vendorChat.id,
    receiver_id: "cust-1",
    media_type: "text",
    content: "still acting for the vendor",
  }, "forbidden");
  const barrier = await sendText(shop, "agent-1", "your own chat still works");
  const seen = await agentAll.next(
    (frame) => frame.type === "chat_message" && frame.message.id === barrier.id,
    "the barrier message",
  );
  const before = agentAll.frames.slice(mark, agentAll.frames.indexOf(seen));
  assert.deepEqual(before.map((frame) => frame.type), ["error"]);
  const listed = await acked(agentAll, { action: "list_chats" });
  assert.equal(listed.type, "ack");
  const { chats } = await agentAll.nextOfType("chats");
  assert.deepEqual(chats.map((row: Frame) => row.chat_id), [ownChat.id]);
});

Deno.test("a removed member's chats socket is sent the chat list again without the vendor's chats, as an added member's is with them", async () => {
  await using cluster = await startCluster({ instances: 2 });
  const service = cluster.main.service.chat;
  const vendorChat = await service.createChat("cust-1", "vend-1");
  const ownChat = await service.createChat("agent-1", "vend-2");
  await service.addVendorMember("vend-1", "agent-1", "agent");
  await using here = await cluster.openChats("agent-1");
  await using there = await cluster.openChats("agent-1", 1);
  for (const socket of [here, there]) {
    const { chats } = await socket.nextOfType("chats");
    assert.deepEqual(
      chats.map((row: Frame) => row.chat_id).sort(),
      [vendorChat.id, ownChat.id].sort(),
    );
  }

  await service.removeVendorMember("vend-1", "agent-1");
  for (const socket of [here, there]) {
    const { chats } = await socket.nextOfType("chats");
    assert.deepEqual(chats.map((row: Frame) => row.chat_id), [ownChat.id]);
  }
});

Deno.test("a member removed while their chats socket reads the list for a new chat is sent the list again without the vendor's chats", async () => {
  await using cluster = await startCluster({ nats: false });
  const service = cluster.main.service.chat;
  const vendorChat = await service.createChat("cust-1", "vend-1");
  await service.addVendorMember("vend-1", "agent-1", "agent");
  await using agent = await joinAllChats(cluster, "agent-1");
  // the list pushed for the next new chat is read before the removal, and sent after it
  const list = holdAnswers(service, "listChats");
  const newChat = await service.createChat("cust-2", "vend-1");
  await list.read;
  await service.removeVendorMember("vend-1", "agent-1");
  // the removal is heard by the socket (in-process bus) while its list is on its way
  await new Promise((resolve) => setTimeout(resolve, 200));
  list.release();
  const stale = await agent.nextOfType("chats");
  assert.deepEqual(
    stale.chats.map((row: Frame) => row.chat_id).sort(),
    [vendorChat.id, newChat.id].sort(),
  );
  const { chats } = await agent.next(
    (frame) => frame.type === "chats",
    "the chat list without the vendor's chats",
    3_000,
  );
  assert.deepEqual(chats, []);
});

Deno.test("a member added while connected gets the vendor's chats on the open chats socket", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("buyer", "store");
  await using agent = await cluster.openChats("new-agent");
  assert.deepEqual((await agent.nextOfType("chats")).chats, []);
  await cluster.main.service.chat.addVendorMember("store", "new-agent", "agent");
  const refreshed = await agent.nextOfType("chats");
  assert.deepEqual(refreshed.chats.map((row: { chat_id: string }) => row.chat_id), [chat.id]);
  await using buyer = await cluster.openChat("buyer", chat.id);
  await buyer.nextOfType("unread_messages");
  await buyer.request({
    action: "send_message",
    receiver_id: "store",
    media_type: "text",
    content: "hello",
  });
  const received = await agent.nextOfType("chat_message");
  assert.equal(received.message.content, "hello");
});

Deno.test("a member removed and added again while connected gets each message of the vendor's chats once", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  const chat = await service.createChat("buyer", "store");
  await service.addVendorMember("store", "agent", "agent");
  await using agent = await joinAllChats(cluster, "agent");
  await service.removeVendorMember("store", "agent");
  await service.addVendorMember("store", "agent", "agent");
  // the list the removal owes may come first, read before or after the member was added again
  const list = await agent.next(
    (frame) => frame.type === "chats" && frame.chats.length > 0,
    "the chat list with the vendor's chat again",
  );
  assert.deepEqual(list.chats.map((row: Frame) => row.chat_id), [chat.id]);
  await using buyer = await joinChat(cluster, "buyer", chat.id);
  const first = await sendText(buyer, "store", "once");
  const second = await sendText(buyer, "store", "and once more");
  // the second arrived after the first: a copy of the first would be in between
  assert.deepEqual((await agent.nextOfType("chat_message")).message, first);
  assert.deepEqual((await agent.nextOfType("chat_message")).message, second);
  assert.deepEqual(agent.pending("chat_message"), []);
});

Deno.test("a member's chats socket takes no notice, and logs no error, when the vendor opens a chat as another vendor's customer", async () => {
  const logged: string[] = [];
  await using _logging = await configureLogging("warning", {
    write: (bytes) => logged.push(new TextDecoder().decode(bytes)),
  });
  await using cluster = await startCluster({ nats: false });
  const service = cluster.main.service.chat;
  await service.addVendorMember("vend-1", "agent-1", "agent");
  await using agentAll = await joinAllChats(cluster, "agent-1");
  // vend-1 buys from vend-2: told on vend-1's subject, which the member hears
  const bought = await service.createChat("vend-1", "vend-2");
  // told on the same subject after it, so taken in after it
  const sold = await service.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", sold.id);
  const sent = await sendText(customer, "vend-1", "after the purchase");
  assert.deepEqual((await agentAll.nextOfType("chat_message")).message, sent);
  assert.deepEqual(agentAll.frames.filter((frame) => frame.chat_id === bought.id), []);
  assert.deepEqual(logged, []);
});

Deno.test("a member's chats socket follows a chat the vendor gets while the socket reads its chats", async () => {
  // no sweep within the test: the chat must come by its event, not by the store's look back
  await using cluster = await startCluster({ nats: false, env: { FEED_SWEEP_SECONDS: "3600" } });
  const service = cluster.main.service.chat;
  await service.addVendorMember("vend-1", "agent-1", "agent");
  const observer = postgres(cluster.databaseUrl, { max: 2, onnotice: () => {} });
  const locker = await observer.reserve();
  try {
    // the socket's first read of the store waits on its sanctions, the rest of it done
    await locker`begin`;
    await locker`lock table bans in access exclusive mode`;
    const agentAll = await cluster.openChats("agent-1");
    await within(waitingForLock(observer, "%from bans%"), 5_000, "the read of sanctions to wait");
    const chat = await service.createChat("cust-1", "vend-1");
    await locker`rollback`;
    const listed = (await agentAll.nextOfType("chats")).chats;
    assert.deepEqual(listed.map((row: Frame) => row.chat_id), [chat.id]);
    await using customer = await joinChat(cluster, "cust-1", chat.id);
    const sent = await sendText(customer, "vend-1", "anyone there?");
    assert.deepEqual((await agentAll.nextOfType("chat_message", 2_000)).message, sent);
  } finally {
    locker.release();
    await observer.end();
  }
});
