/**
 * A user banned, or disconnected, on one instance, whose socket is on another: what is sent after
 * the call answered must not reach that socket. Instance 1 reaches NATS through a proxy the test
 * stalls, so what it publishes leaves it late.
 */
import assert from "node:assert/strict";
import {
  connectWhileEventsLate,
  listedContents,
  messagesAndCounts,
  natsCutToSecondInstance,
  newChatWhileEventsLate,
  pagedContents,
} from "./support/nats_cut.ts";
import { holdAnswers, joinAllChats, joinChat, sendText } from "./support/steps.ts";
import { within } from "./support/wait.ts";

for (
  const [call, request, code] of [
    ["BanUser", { user_id: "bob", moderator_id: "mod-1", reason: "spam" }, 4403],
    ["DisconnectUser", { user_id: "bob", moderator_id: "mod-1", reason: "support" }, 4408],
  ] as const
) {
  Deno.test(`${call} answers once NATS has its event, so a message sent after the answer on another instance never reaches the user`, async () => {
    await using setup = await natsCutToSecondInstance({}, { grpc: true });
    const { cluster, proxy } = setup;
    const admin = await cluster.admin(1);
    const chat = await admin.call("CreateChat", { user_id: "bob", vendor_id: "acme" });
    await using bob = await joinChat(cluster, "bob", chat.id, 0);
    await using vendor = await joinChat(cluster, "acme", chat.id, 0);

    proxy.stall("upstream");
    const answered = admin.call(call, request);
    // what answers while the event cannot leave its instance (for at most NATS's check
    // timeout, 2 s) lets the next message go ahead of it
    const waited = new Promise((resolve) => setTimeout(() => resolve("waiting"), 500));
    const early = await Promise.race([answered.then(() => "answered"), waited]);
    if (early === "answered") await sendText(vendor, "bob", "after the answer");
    proxy.restore();
    await answered;
    await sendText(vendor, "bob", "after the answer");
    assert.equal((await within(bob.closed, 10_000, "the close")).code, code);
    assert.deepEqual(bob.pending("chat_message"), [], "a message sent after the answer");
    assert.equal(early, "waiting", `${call} answered before NATS had its event`);
  });

  for (const endpoint of ["chat", "chats"] as const) {
    const first = endpoint === "chat" ? "first page" : "first chat list";
    Deno.test(`${call} made while the user's ${endpoint} socket connects, on an instance its event reaches late, keeps a message sent after the answer out of the ${first}`, async () => {
      await using setup = await natsCutToSecondInstance({}, { grpc: true });
      const { cluster } = setup;
      const admin = await cluster.admin(0);
      const chat = await admin.call("CreateChat", { user_id: "bob", vendor_id: "acme" });
      await using vendor = await joinChat(cluster, "acme", chat.id, 0);
      // the vendor's socket has instance 1 follow the chat: bob's join of its feed waits for no bus
      await using _vendorThere = await joinChat(cluster, "acme", chat.id, 1);
      // bob may connect; the call and the message come before the first page (or list) is read
      await using bob = await connectWhileEventsLate(setup, {
        userId: "bob",
        ...(endpoint === "chat" ? { chatId: chat.id } : {}),
        meanwhile: async () => {
          await admin.call(call, request);
          await sendText(vendor, "bob", "after the answer");
        },
      });
      assert.equal((await within(bob.closed, 10_000, "the close")).code, code);
      const sent = endpoint === "chat" ? pagedContents(bob) : listedContents(bob);
      assert.deepEqual(sent, [], `a message sent after the answer, in the ${first}`);
    });
  }

  Deno.test(`${call} made while the user's chats socket is open, on an instance its event reaches late, keeps a message sent after the answer out of a chat list pushed there`, async () => {
    await using setup = await natsCutToSecondInstance({}, { grpc: true });
    const { cluster, proxy } = setup;
    const admin = await cluster.admin(0);
    const chat = await admin.call("CreateChat", { user_id: "bob", vendor_id: "acme" });
    await using vendor = await joinChat(cluster, "acme", chat.id, 0);
    await using bob = await joinAllChats(cluster, "bob", 1);
    const list = holdAnswers(cluster.instances[1]!.service.chat, "listChats");

    proxy.stall("downstream");
    await admin.call(call, request);
    await sendText(vendor, "bob", "after the answer");
    // a chat created through bob's instance is told to his socket there at once, not over NATS:
    // his list is pushed again with it
    await (await cluster.admin(1)).call("CreateChat", { user_id: "bob", vendor_id: "shop" });
    await list.read;
    proxy.restore();
    list.release();
    assert.equal((await within(bob.closed, 10_000, "the close")).code, code);
    assert.deepEqual(
      listedContents(bob),
      [],
      "a message sent after the answer, in a chat list pushed",
    );
  });

  Deno.test(`${call} made while the user's chats socket is open, on an instance its event reaches late, keeps a message sent after the answer out of the history and unread count of a chat new there`, async () => {
    await using setup = await natsCutToSecondInstance({}, { grpc: true });
    const { cluster } = setup;
    const admin = await cluster.admin(0);
    await using bob = await joinAllChats(cluster, "bob", 1);
    // the call, and the shop's message in the new chat, come before bob's socket reads its history
    await newChatWhileEventsLate(setup, {
      user_id: "bob",
      vendor_id: "shop",
      meanwhile: async (chat) => {
        await admin.call(call, request);
        await using shop = await joinChat(cluster, "shop", chat.id, 0);
        await sendText(shop, "bob", "after the answer");
      },
    });
    assert.equal((await within(bob.closed, 10_000, "the close")).code, code);
    assert.deepEqual(
      messagesAndCounts(bob),
      { messages: [], counts: [] },
      "a message sent after the answer, or its unread count",
    );
  });
}
