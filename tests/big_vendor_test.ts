import assert from "node:assert/strict";
import { startCluster } from "./support/service.ts";
import { joinAllChats, joinChat, sendText } from "./support/steps.ts";
import type { Frame } from "./support/ws_client.ts";

Deno.test("chats created at once for a vendor (an import) are taken in by its chats socket with a few membership reads, not one each", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  await using vendorAll = await joinAllChats(cluster, "vend-import");
  // every read of the vendor's side in chats its socket was told of, one chat or many at a time
  let reads = 0;
  const counted = service as unknown as Record<string, (...args: unknown[]) => unknown>;
  let historyReads = 0;
  const history = service.history;
  Object.assign(service, {
    history: (...args: Parameters<typeof history>) => {
      historyReads++;
      return history.apply(service, args);
    },
  });
  const count = 100;
  const creations: Promise<unknown>[] = [];
  // The first take-in is held until every creation is out and told: how many creations one
  // take-in meets otherwise depends on the machine's speed (11 reads on a loaded CI run), and
  // what this test is about is that those told while a take-in runs wait for the next one.
  let firstRead: Promise<void> | undefined;
  for (const name of ["membership", "memberships"]) {
    const original = counted[name];
    if (typeof original !== "function") continue;
    counted[name] = async (...args: unknown[]) => {
      if (args[0] !== "vend-import") return original.apply(service, args);
      reads++;
      await (firstRead ??= Promise.all(creations).then(() =>
        new Promise((told) => setTimeout(told, 300))
      ));
      return original.apply(service, args);
    };
  }
  for (let n = 0; n < count; n++) {
    creations.push(service.createChat(`cust-import-${n}`, "vend-import"));
  }
  const created = await Promise.all(creations) as Awaited<ReturnType<typeof service.createChat>>[];
  // each new chat is the socket's: a message in it reaches the socket
  for (const chat of [created[0]!, created.at(-1)!]) {
    await using customer = await joinChat(cluster, chat.user_id, chat.id);
    const sent = await sendText(customer, "vend-import", `hello from ${chat.user_id}`);
    const heard = await vendorAll.next(
      (frame: Frame) => frame.type === "chat_message" && frame.message.id === sent.id,
      `the message in ${chat.id}`,
      30_000,
    );
    assert.equal(heard.chat_id, chat.id);
  }
  const listed = await vendorAll.next(
    // (a page holds the whole run of chats sharing its last updated_at: maybe more than 50)
    (frame: Frame) => frame.type === "chats" && frame.chats.length >= 50,
    "a chats list of the chats created",
    30_000,
  );
  assert.ok(listed.chats.every((row: Frame) => row.vendor_id === "vend-import"));
  assert.ok(reads <= 3, `${reads} membership reads for ${count} chats created at once`);
  // empty when the socket followed them: nothing to read of their history
  assert.ok(historyReads <= 10, `${historyReads} history reads for ${count} new chats`);
});
