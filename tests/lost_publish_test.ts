/**
 * A message, edit, deletion or read mark committed but never published: the instance lost the
 * database's answer after the commit (the action answered `unavailable`), or the bus dropped the
 * publish. No later message shows the gap, and a deletion or a read mark done again changes
 * nothing and publishes nothing, so each instance's sweep of the store (FEED_SWEEP_SECONDS) finds
 * them.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import type { ChatStore } from "../chat/ports.ts";
import type { ChatService } from "../chat/service.ts";
import { createPostgresStore } from "../db/postgres_store.ts";
import { fromAlice } from "./support/database.ts";
import { sample } from "./support/service_process.ts";
import { startCluster } from "./support/service.ts";
import {
  acked,
  holdAnswers,
  joinAllChats,
  joinChat,
  messageWithSeq,
  sendText,
  stillServes,
} from "./support/steps.ts";
import { within } from "./support/wait.ts";
import type { Frame, TestSocket } from "./support/ws_client.ts";

/**
 * Two instances sweeping every 0.2 s, and a chat of alice's with acme: alice on the first,
 * acme on the second and, by its chat list, on the first.
 */
async function chatOnTwoInstances() {
  const cluster = await startCluster({ instances: 2, env: { FEED_SWEEP_SECONDS: "0.2" } });
  const sockets: TestSocket[] = [];
  const setup = {
    cluster,
    sockets,
    async [Symbol.asyncDispose]() {
      for (const socket of sockets) await socket[Symbol.asyncDispose]();
      await cluster[Symbol.asyncDispose]();
    },
  };
  try {
    const chat = await cluster.main.service.chat.createChat("alice", "acme");
    const alice = await joinChat(cluster, "alice", chat.id, 0);
    sockets.push(alice);
    const acme = await joinChat(cluster, "acme", chat.id, 1);
    sockets.push(acme);
    const acmeAll = await joinAllChats(cluster, "acme", 0);
    sockets.push(acmeAll);
    return { ...setup, chat, alice, acme, acmeAll };
  } catch (error) {
    await setup[Symbol.asyncDispose]();
    throw error;
  }
}

/** Writes as the service writes, over a store of its own, and hands nothing to the bus. */
async function writtenUnpublished(
  cluster: { databaseUrl: string },
  write: (store: ChatStore) => Promise<unknown>,
) {
  const sql = postgres(cluster.databaseUrl, { max: 1, onnotice: () => {} });
  try {
    await write(createPostgresStore(sql));
  } finally {
    await sql.end();
  }
}

/** A chat of bob's with acme and bob's "hello from bob" in it, written unpublished; its id. */
async function bobsUnpublishedChat(cluster: { databaseUrl: string }): Promise<string> {
  let chatId = "";
  await writtenUnpublished(cluster, async (store) => {
    const { chat } = await store.createChat("bob", "acme");
    chatId = chat.id;
    await store.insertMessage({ ...fromAlice(chat.id, "hello from bob"), sender_id: "bob" });
  });
  return chatId;
}

/**
 * Makes the service's `method` fail its first call (the store failing once) and answer the later
 * ones; `failed()` tells whether that first call came, and `failure` resolves once it failed.
 */
function failingOnce(service: ChatService, method: "unread" | "history") {
  const original: (...args: never[]) => Promise<unknown> = service[method];
  let failed = false;
  const failure = Promise.withResolvers<void>();
  Object.assign(service, {
    [method]: async (...args: never[]) => {
      if (failed) return await original.apply(service, args);
      failed = true;
      // after the rejection was handled: what the caller does with it is done
      setTimeout(failure.resolve, 0);
      throw new Error("the store failed");
    },
  });
  return { failed: () => failed, failure: failure.promise };
}

/**
 * A cluster with no sweep within a test, acme's chats socket on it, and a chat of bob's with acme
 * created after it (published: the socket hears of it once) with bob's socket on it. The chats
 * socket reads its side in the chat only once `messagesSent` is resolved: a chat empty when its
 * feed is joined has no history to read, one with messages by then has.
 */
async function chatTakenInOnceMessagesSent() {
  const cluster = await startCluster({ instances: 1, env: { FEED_SWEEP_SECONDS: "3600" } });
  try {
    const acmeAll = await joinAllChats(cluster, "acme");
    const { chat: service } = cluster.main.service;
    const messagesSent = Promise.withResolvers<void>();
    const memberships = service.memberships;
    Object.assign(service, {
      memberships: async (...args: Parameters<typeof memberships>) => {
        await messagesSent.promise;
        return await memberships.apply(service, args);
      },
    });
    const chat = await service.createChat("bob", "acme");
    const bob = await joinChat(cluster, "bob", chat.id);
    return {
      acmeAll,
      service,
      chat,
      bob,
      messagesSent,
      [Symbol.asyncDispose]: () => cluster[Symbol.asyncDispose](),
    };
  } catch (error) {
    await cluster[Symbol.asyncDispose]();
    throw error;
  }
}

/** Each instance's value of a counter, from its /metrics. */
function counterOnEach(cluster: { instances: Array<{ httpUrl: string }> }, name: string) {
  return Promise.all(cluster.instances.map(async (instance) => {
    const response = await fetch(`${instance.httpUrl}/metrics`);
    return sample(await response.text(), name);
  }));
}

Deno.test("a message stored but never published reaches every socket of the chat by the sweep, once, with the unread push", async () => {
  await using setup = await chatOnTwoInstances();
  const { cluster, chat, alice, acme, sockets } = setup;
  await sendText(alice, "acme", "published");
  for (const socket of sockets) await messageWithSeq(socket, 1);

  await writtenUnpublished(
    cluster,
    (store) => store.insertMessage(fromAlice(chat.id, "committed, never published")),
  );
  for (const socket of sockets) {
    const { message } = await messageWithSeq(socket, 2);
    assert.equal(message.content, "committed, never published");
  }
  const push = await acme.next(
    (frame) => frame.type === "unread_messages" && frame.count === 2,
    "the unread push after the recovered message",
  );
  assert.deepEqual(push.messages.map((message: { seq: number }) => message.seq), [1, 2]);

  // once: the next message follows it, and nothing came twice
  await sendText(alice, "acme", "next");
  for (const socket of sockets) {
    await messageWithSeq(socket, 3);
    assert.deepEqual(socket.pending("chat_message"), []);
  }
  const recovered = await counterOnEach(cluster, "chat_messages_recovered_total");
  assert.deepEqual(recovered, [1, 1], "each instance delivered it to its own sockets");
});

Deno.test("an edit and a deletion stored but never published reach every socket of the chat by the sweep, once each", async () => {
  await using setup = await chatOnTwoInstances();
  const { cluster, chat, alice, sockets } = setup;
  const sent: Frame[] = [];
  for (let n = 1; n <= 2; n++) sent.push(await sendText(alice, "acme", `m${n}`));
  for (const socket of sockets) await messageWithSeq(socket, 2);

  await writtenUnpublished(cluster, async (store) => {
    await store.editOwnMessage({ userId: "alice", chatId: chat.id }, sent[0]!.id, "m1, edited");
    await store.deleteMessage(sent[1]!.id, "alice");
  });
  const event = (socket: TestSocket, type: string, messageId: string) =>
    socket.next(
      (frame) => frame.type === type && (frame.message_id ?? frame.message?.id) === messageId,
      `${type} of ${messageId}`,
    );
  for (const socket of sockets) {
    const edit = await event(socket, "message_edited", sent[0]!.id);
    assert.equal(edit.message.content, "m1, edited");
    const deletion = await event(socket, "message_deleted", sent[1]!.id);
    assert.equal(deletion.deleted_by, "alice");
  }

  // once: more sweeps have run by the time the next message is through, and sent nothing again
  const amended = await counterOnEach(cluster, "chat_amendments_recovered_total");
  assert.deepEqual(amended, [2, 2], "each instance sent them to its own sockets");
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  await sendText(alice, "acme", "next");
  for (const socket of sockets) {
    await messageWithSeq(socket, 3);
    for (const type of ["message_edited", "message_deleted"]) {
      assert.deepEqual(socket.pending(type), [], `${type} again`);
    }
  }
  assert.deepEqual(await counterOnEach(cluster, "chat_amendments_recovered_total"), [2, 2]);
});

Deno.test("read marks stored but never published reach every socket of the chat by the sweep, once each; those published are not read again", async () => {
  await using setup = await chatOnTwoInstances();
  const { cluster, chat, alice, acme, sockets } = setup;
  const sent: Frame[] = [];
  for (let n = 1; n <= 5; n++) sent.push(await sendText(alice, "acme", `m${n}`));
  for (const socket of sockets) await messageWithSeq(socket, 5);
  const readOf = (socket: TestSocket, message: Frame) =>
    socket.next(
      (frame) => frame.type === "message_read" && frame.message_id === message.id,
      `message_read of ${message.id}`,
    );
  const differing = "chat_read_tallies_differing_total";

  // published as usual, on the second instance: every sweep's tallies agree with what came
  await acked(acme, { action: "read_up_to", seq: 2 });
  await acked(acme, { action: "read_message", message_id: sent[2]!.id });
  for (const socket of sockets) {
    await socket.nextOfType("messages_read");
    await readOf(socket, sent[2]!);
  }
  await new Promise((resolve) => setTimeout(resolve, 1_000)); // five periods: past the window
  assert.deepEqual(await counterOnEach(cluster, differing), [0, 0]);

  await writtenUnpublished(cluster, async (store) => {
    await store.markReadUpTo(chat.id, "vendor", 4, "acme");
    await store.markRead(chat.id, sent[4]!.id, "vendor", "acme");
  });
  // a read_up_to comes back as a message_read for each message it marked
  for (const socket of sockets) {
    for (const message of sent.slice(3)) {
      assert.equal((await readOf(socket, message)).reader_id, "acme");
    }
  }

  const readForLoss = await counterOnEach(cluster, differing);
  assert.ok(
    readForLoss.every((chats) => chats >= 1),
    `chats whose marks were read: ${readForLoss}`,
  );

  // once: more sweeps have run by the time the next message is through, and sent nothing again
  assert.deepEqual(await counterOnEach(cluster, "chat_amendments_recovered_total"), [2, 2]);
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  await sendText(alice, "acme", "next");
  for (const socket of sockets) {
    await messageWithSeq(socket, 6);
    assert.deepEqual(socket.pending("message_read"), [], "message_read again");
  }
  assert.deepEqual(await counterOnEach(cluster, "chat_amendments_recovered_total"), [2, 2]);
  // what was sent again is tallied as delivered: later sweeps read no marks
  assert.deepEqual(await counterOnEach(cluster, differing), readForLoss);
});

Deno.test("a ban and an operator disconnect stored but never published close the users' sockets on every instance by the sweep", async () => {
  await using setup = await chatOnTwoInstances();
  const { cluster, chat, alice, acme, acmeAll } = setup;
  const by = { moderator_id: "mod", target_message_id: null, reason: "support" };
  await writtenUnpublished(cluster, async (store) => {
    await store.ban({
      user_id: "alice",
      moderator_id: "mod",
      reason: "spam",
      duration_seconds: null,
    }, {
      audit: { ...by, action: "ban_user", target_user_id: "alice" },
    });
    await store.recordModeration({ ...by, action: "disconnect_user", target_user_id: "acme" });
  });
  // a socket opened after the disconnect is not the one it ended
  await using acmeLater = await joinChat(cluster, "acme", chat.id, 0);
  const closes = await Promise.all(
    [alice, acme, acmeAll].map((socket) => within(socket.closed, 5_000, "the sweep's close")),
  );
  assert.deepEqual(closes.map((close) => close.code), [4403, 4408, 4408]);
  // the later socket was screened too, and kept
  const kept = 'chat_sanction_screens_total{outcome="kept"}';
  for (const until = Date.now() + 5_000; (await counterOnEach(cluster, kept))[0]! < 1;) {
    assert.ok(Date.now() < until, "the later socket screened");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await stillServes(acmeLater);
});

Deno.test("a chat created but never published reaches the vendor's chats socket by the sweep, with what was sent in it", async () => {
  await using setup = await chatOnTwoInstances();
  const { cluster, acmeAll } = setup;
  const chatId = await bobsUnpublishedChat(cluster);
  const frame = await acmeAll.next(
    (candidate) => candidate.type === "chat_message" && candidate.chat_id === chatId,
    "the new chat's message on the chats socket",
  );
  assert.deepEqual([frame.message.seq, frame.message.content], [1, "hello from bob"]);
  // followed from then on: a message sent in it now comes live, once
  const bob = await joinChat(cluster, "bob", chatId, 1);
  setup.sockets.push(bob);
  await sendText(bob, "acme", "and again");
  const next = await messageWithSeq(acmeAll, 2);
  assert.equal(next.message.content, "and again");
  assert.deepEqual(acmeAll.pending("chat_message"), []);
});

Deno.test("a chat created but never published, with more than a page sent in it, reaches the vendor's chats socket whole", async () => {
  await using setup = await chatOnTwoInstances();
  const { cluster, acmeAll } = setup;
  const sent = 130;
  let chatId = "";
  await writtenUnpublished(cluster, async (store) => {
    const { chat } = await store.createChat("bob", "acme");
    chatId = chat.id;
    for (let seq = 1; seq <= sent; seq++) {
      await store.insertMessage({ ...fromAlice(chat.id, `m${seq}`), sender_id: "bob" });
    }
  });
  const last = await acmeAll.next(
    (candidate) =>
      candidate.type === "chat_message" && candidate.chat_id === chatId &&
      candidate.message.seq === sent,
    "the new chat's last message on the chats socket",
  );
  assert.equal(last.message.content, `m${sent}`);
  const seqs = acmeAll.frames
    .filter((frame) => frame.type === "chat_message" && frame.chat_id === chatId)
    .map((frame) => frame.message.seq);
  assert.deepEqual(seqs, Array.from({ length: sent }, (_, index) => index + 1));
});

Deno.test("a chat taken in with messages to the socket's side brings it their unread_messages, and one with only its own none", async () => {
  await using setup = await chatOnTwoInstances();
  const { cluster, acmeAll } = setup;
  const chatIds: string[] = [];
  await writtenUnpublished(cluster, async (store) => {
    for (
      const [customer, sender, side] of [["bob", "bob", "customer"], [
        "carol",
        "acme",
        "vendor",
      ]] as const
    ) {
      const { chat } = await store.createChat(customer, "acme");
      chatIds.push(chat.id);
      await store.insertMessage({
        ...fromAlice(chat.id, `from ${sender}`),
        sender_id: sender,
        sender_side: side,
        receiver_id: sender === "acme" ? customer : "acme",
      });
    }
  });
  const [toAcme, fromAcme] = chatIds as [string, string];
  for (const chatId of chatIds) {
    await acmeAll.next(
      (frame) => frame.type === "chat_message" && frame.chat_id === chatId,
      "the new chat's message on the chats socket",
    );
  }
  const unread = await acmeAll.next(
    (frame) => frame.type === "unread_messages" && frame.chat_id === toAcme,
    "the unread_messages of the chat with a message to acme",
  );
  assert.equal(unread.count, 1);
  assert.deepEqual(unread.messages.map((message: Frame) => message.content), ["from bob"]);
  // a barrier, then nothing was pushed for the chat whose only message acme sent
  await stillServes(acmeAll, fromAcme);
  const pushed = acmeAll.frames.filter((frame) =>
    frame.type === "unread_messages" && frame.chat_id === fromAcme
  );
  assert.equal(pushed.length, 1, "only the answer to unread_message");
});

Deno.test("a vendor member removed but never published loses the vendor's chat by the sweep", async () => {
  await using setup = await chatOnTwoInstances();
  const { cluster, chat } = setup;
  await cluster.main.service.chat.addVendorMember("acme", "agent", "agent");
  await using agent = await joinChat(cluster, "agent", chat.id, 1);
  await writtenUnpublished(cluster, (store) => store.removeVendorMember("acme", "agent"));
  assert.equal((await within(agent.closed, 5_000, "the removed member's close")).code, 4403);
});

Deno.test("a vendor member added but never published gets the vendor's chats on the open chats socket by the sweep", async () => {
  await using setup = await chatOnTwoInstances();
  const { cluster, chat } = setup;
  await using agentAll = await joinAllChats(cluster, "agent", 1);
  await writtenUnpublished(cluster, (store) => store.addVendorMember("acme", "agent", "agent"));
  const { chats } = await agentAll.nextOfType("chats", 5_000);
  assert.deepEqual(chats.map((row: Frame) => row.chat_id), [chat.id]);
  // told once: the sweeps of the next second (five periods, past the window) find the vendor
  // heard already
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  await sendText(setup.alice, "acme", "for the new member");
  await messageWithSeq(agentAll, 1);
  assert.deepEqual(agentAll.pending("chats"), []);
});

Deno.test("a new chat whose history the store fails to read while a chats socket takes it in is taken in again at the next telling, its messages and all", async () => {
  // acme has no chat yet: no sweep reads messages, which the lock below would hold up
  await using cluster = await startCluster({ instances: 1, env: { FEED_SWEEP_SECONDS: "1" } });
  await using acmeAll = await joinAllChats(cluster, "acme");
  const locker = postgres(cluster.databaseUrl, { max: 2, onnotice: () => {} });
  try {
    const chatId = await bobsUnpublishedChat(cluster);
    // the sweep tells the socket of the chat a period later: by then its history cannot be read
    const holder = await locker.reserve();
    await holder`begin`;
    await holder`lock table messages in access exclusive mode`;
    let ended = false;
    for (const until = performance.now() + 5_000; !ended && performance.now() < until;) {
      const [row] = await locker<Array<{ ended: boolean }>>`
        select pg_terminate_backend(pid) as ended from pg_stat_activity
        where datname = current_database() and application_name like 'chat-%'
          and wait_event_type = 'Lock' and query like '%from messages%where chat_id = $1 and seq > $2%'`;
      ended = row?.ended ?? false;
      if (!ended) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await holder`rollback`;
    holder.release();
    assert.ok(ended, "the chats socket read the new chat's history");

    const frame = await acmeAll.next(
      (candidate) => candidate.type === "chat_message" && candidate.chat_id === chatId,
      "the new chat's message on the chats socket",
      5_000,
    );
    assert.deepEqual([frame.message.seq, frame.message.content], [1, "hello from bob"]);
    // followed from then on: a message sent in it now comes live, once
    await using bob = await joinChat(cluster, "bob", chatId);
    await sendText(bob, "acme", "and again");
    assert.equal((await messageWithSeq(acmeAll, 2)).message.content, "and again");
    assert.deepEqual(acmeAll.pending("chat_message"), []);
  } finally {
    await locker.end();
  }
});

Deno.test("a new chat whose unread count the store fails to read while a chats socket takes it in gets it at the next telling", async () => {
  await using cluster = await startCluster({ instances: 1, env: { FEED_SWEEP_SECONDS: "1" } });
  await using acmeAll = await joinAllChats(cluster, "acme");
  const { chat: service } = cluster.main.service;
  // the pages of the new chat are read and sent, then the unread count fails, once
  const unread = failingOnce(service, "unread");
  const chatId = await bobsUnpublishedChat(cluster);
  const frame = await acmeAll.next(
    (candidate) => candidate.type === "chat_message" && candidate.chat_id === chatId,
    "the new chat's message on the chats socket",
    5_000,
  );
  assert.equal(frame.message.seq, 1);
  assert.ok(unread.failed(), "the unread count was read");
  // what the failed read owed acme comes at the next telling, though no page is left to send
  const counted = await acmeAll.next(
    (candidate) => candidate.type === "unread_messages" && candidate.chat_id === chatId,
    "the new chat's unread count on the chats socket",
    5_000,
  );
  assert.equal(counted.count, 1);
  assert.deepEqual(acmeAll.pending("chat_message"), []);
});

Deno.test("a new chat the store fails to take in on a chats socket is tried again by the socket itself, with no sweep to tell it again", async () => {
  await using setup = await chatTakenInOnceMessagesSent();
  const { acmeAll, service, chat, bob, messagesSent } = setup;
  // the first read of the new chat's history fails, once
  const history = failingOnce(service, "history");
  await sendText(bob, "acme", "before the failed take-in");
  messagesSent.resolve();
  await sendText(bob, "acme", "after the failed take-in");
  const isMessage = (candidate: Frame) =>
    candidate.type === "chat_message" && candidate.chat_id === chat.id;
  const first = await acmeAll.next(isMessage, "the new chat's first message", 8_000);
  const second = await acmeAll.next(isMessage, "the new chat's second message", 8_000);
  assert.ok(history.failed(), "the history was read");
  assert.deepEqual(
    [first.message.content, second.message.content],
    ["before the failed take-in", "after the failed take-in"],
  );
  assert.deepEqual(acmeAll.pending("chat_message"), []);
});

Deno.test("a deletion made while a chats socket takes in a new chat, and an edit made while it waits to try again after the store failed, reach the socket", async () => {
  await using setup = await chatTakenInOnceMessagesSent();
  const { acmeAll, service, chat, bob, messagesSent } = setup;
  const one = await sendText(bob, "acme", "one");
  const two = await sendText(bob, "acme", "two");
  // the new chat's history is read and held; once sent, its unread count fails, once
  const history = holdAnswers(service, "history");
  const unread = failingOnce(service, "unread");
  messagesSent.resolve();
  await history.read;
  await acked(bob, { action: "delete_message", message_id: one.id });
  // bob's socket on the instance has the deletion: the chats socket was handed it too
  await bob.nextOfType("message_deleted");
  history.release();
  await unread.failure;
  await acked(bob, { action: "edit_message", message_id: two.id, content: "two, edited" });
  await bob.nextOfType("message_edited");

  const deleted = await acmeAll.nextOfType("message_deleted", 8_000);
  assert.equal(deleted.message_id, one.id);
  const edited = await acmeAll.nextOfType("message_edited", 8_000);
  assert.equal(edited.message.content, "two, edited");
  // a message after them comes once, live: the chat is followed as before
  const three = await sendText(bob, "acme", "three");
  assert.equal((await messageWithSeq(acmeAll, three.seq)).message.content, "three");
  const seqs = acmeAll.frames
    .filter((frame) => frame.type === "chat_message" && frame.chat_id === chat.id)
    .map((frame) => frame.message.seq);
  assert.deepEqual(seqs, [1, 2, 3]);
});
