/**
 * One contract for the chat store, run on a real PostgreSQL and on the embedded PGlite that
 * `deno task dev` uses, so the development default never drifts from production.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { ChatError } from "../chat/errors.ts";
import type {
  ChatAsker,
  ChatStore,
  InsertedMessage,
  NewMedia,
  NewMessage,
  OwnChange,
  RecentWindow,
} from "../chat/ports.ts";
import type { Chat, Side } from "../chat/types.ts";
import { freshDatabase } from "../tests/support/database.ts";
import { startEmbeddedPostgres } from "./embedded.ts";
import { migrate } from "./migrate.ts";
import { createPostgresStore } from "./postgres_store.ts";

interface Backend {
  name: string;
  /** The store, and its connection for what a test must set up or read beside it. */
  open(): Promise<{ store: ChatStore; sql: postgres.Sql } & AsyncDisposable>;
}

let migratedDump: Promise<Blob> | undefined;

/**
 * An embedded database with every migration, made once for all the tests: each test's own
 * starts as a copy of it, not from initdb and the migrations (1 s against 2.5 s here, times 31).
 */
function migratedEmbeddedDatabase(): Promise<Blob> {
  migratedDump ??= (async () => {
    const embedded = await startEmbeddedPostgres("memory://");
    try {
      const sql = postgres(embedded.url, { max: 1, onnotice: () => {} });
      await migrate(sql);
      await sql.end();
      return await embedded.dumpDataDir();
    } finally {
      await embedded.close();
    }
  })();
  return migratedDump;
}

const backends: Backend[] = [
  {
    name: "PostgreSQL",
    async open() {
      const database = await freshDatabase();
      const sql = postgres(database.url, { max: 4, onnotice: () => {} });
      return {
        store: createPostgresStore(sql),
        sql,
        async [Symbol.asyncDispose]() {
          await sql.end();
          await database[Symbol.asyncDispose]();
        },
      };
    },
  },
  {
    name: "embedded PGlite",
    async open() {
      const embedded = await startEmbeddedPostgres("memory://", {
        loadDataDir: await migratedEmbeddedDatabase(),
      });
      const sql = postgres(embedded.url, { max: 4, onnotice: () => {} });
      return {
        store: createPostgresStore(sql),
        sql,
        async [Symbol.asyncDispose]() {
          await sql.end();
          await embedded.close();
        },
      };
    },
  },
];

/**
 * What a test just made is outside a window of 0 (a window ends at the database's now) and
 * outside one that leaves out the last 30 s.
 */
async function assertNoneOutsideItsWindow(find: (window: RecentWindow) => Promise<unknown[]>) {
  assert.deepEqual(await find({ withinMs: 0 }), []);
  assert.deepEqual(await find({ withinMs: 60_000, exceptLastMs: 30_000 }), []);
}

const text = (chat: Chat, content: string, extra: Partial<NewMessage> = {}): NewMessage => ({
  chat_id: chat.id,
  sender_id: chat.user_id,
  sender_side: "customer",
  receiver_id: chat.vendor_id,
  media_type: "text",
  content,
  media_id: null,
  client_id: null,
  ...extra,
});

/** A small PNG uploaded to `chat` by `uploaderId`, its SHA-256 `hexPair` repeated. */
const pngOf = (chat: Chat, uploaderId: string, hexPair: string): NewMedia => ({
  chat_id: chat.id,
  uploader_id: uploaderId,
  media_type: "image",
  sha256: hexPair.repeat(32),
  mime_type: "image/png",
  size: 68,
});

/** Chats of "c" and "c2" with vendor "v": `count` messages in the first, one in the other. */
async function twoChatsSent(store: ChatStore, count: number) {
  const chat = (await store.createChat("c", "v")).chat;
  const other = (await store.createChat("c2", "v")).chat;
  const sent = [];
  for (let i = 1; i <= count; i++) {
    sent.push((await store.insertMessage(text(chat, `m${i}`))).message);
  }
  const elsewhere = (await store.insertMessage(text(other, "o1"))).message;
  return { chat, other, sent, elsewhere };
}

/**
 * A chat of "c" with vendor "v", whose member "agent" is still on the vendor and "gone" was
 * removed; and a message of it from the vendor's side.
 */
async function chatWithRemovedMember(store: ChatStore) {
  const chat = (await store.createChat("c", "v")).chat;
  await store.addVendorMember("v", "agent", "agent");
  await store.addVendorMember("v", "gone", "agent");
  await store.removeVendorMember("v", "gone");
  const fromVendorSide = (senderId: string, content: string) =>
    text(chat, content, { sender_id: senderId, sender_side: "vendor", receiver_id: "c" });
  return { chat, fromVendorSide };
}

for (const backend of backends) {
  Deno.test(`${backend.name}: concurrent sends get gapless seqs per chat`, async () => {
    await using db = await backend.open();
    const a = (await db.store.createChat("ca", "va")).chat;
    const b = (await db.store.createChat("cb", "vb")).chat;
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) => db.store.insertMessage(text(i % 2 ? a : b, `m${i}`))),
    );
    for (const chat of [a, b]) {
      const seqs = results.filter((r) => r.message.chat_id === chat.id).map((r) => r.message.seq);
      assert.deepEqual(seqs.sort((x, y) => x - y), Array.from({ length: 30 }, (_, i) => i + 1));
    }
    assert.equal((await db.store.getChat(a.id))?.last_seq, 30);
  });

  Deno.test(`${backend.name}: a repeated client_id writes one message`, async () => {
    await using db = await backend.open();
    const chat = (await db.store.createChat("c", "v")).chat;
    const [first, second] = await Promise.all([
      db.store.insertMessage(text(chat, "once", { client_id: "k1" })),
      db.store.insertMessage(text(chat, "once", { client_id: "k1" })),
    ]);
    assert.equal(first!.message.id, second!.message.id);
    assert.deepEqual([first!.duplicate, second!.duplicate].sort(), [false, true]);
    const third = await db.store.insertMessage(text(chat, "once", { client_id: "k1" }));
    assert.equal(third.duplicate, true);
    assert.equal(third.message.id, first!.message.id);
    const next = await db.store.insertMessage(text(chat, "next"));
    assert.equal(next.message.seq, 2, "a duplicate takes no seq");
  });

  Deno.test(`${backend.name}: a message is found by its client_id in its chat and sender's only`, async () => {
    await using db = await backend.open();
    const chat = (await db.store.createChat("c", "v")).chat;
    const other = (await db.store.createChat("c", "v2")).chat;
    const sent = await db.store.insertMessage(text(chat, "once", { client_id: "k1" }));
    assert.deepEqual(await db.store.messageByClientId(chat.id, "c", "k1"), sent.message);
    assert.equal(await db.store.messageByClientId(chat.id, "v", "k1"), null);
    assert.equal(await db.store.messageByClientId(other.id, "c", "k1"), null);
    assert.equal(await db.store.messageByClientId(chat.id, "c", "k2"), null);
    const afterWrites = { afterWritesUnderWay: true };
    assert.deepEqual(
      await db.store.messageByClientId(chat.id, "c", "k1", afterWrites),
      sent.message,
    );
    assert.equal(await db.store.messageByClientId(other.id, "c", "k1", afterWrites), null);
  });

  Deno.test(`${backend.name}: a media row no message carries is deleted, one a message carries is kept`, async () => {
    await using db = await backend.open();
    const chat = (await db.store.createChat("c", "v")).chat;
    const image = {
      chat_id: chat.id,
      uploader_id: "c",
      media_type: "image" as const,
      sha256: "cd".repeat(32),
      mime_type: "image/png",
      size: 68,
    };
    const [carried, unsent] = [
      await db.store.createMedia(image),
      await db.store.createMedia(image),
    ];
    await db.store.insertMessage(
      text(chat, null as unknown as string, { media_type: "image", media_id: carried.id }),
    );
    assert.equal(await db.store.deleteUnsentMedia(carried.id), false);
    assert.equal(await db.store.deleteUnsentMedia(unsent.id), true);
    assert.equal((await db.store.getMedia(carried.id))?.usage, "live");
    assert.equal(await db.store.getMedia(unsent.id), null);
  });

  Deno.test(`${backend.name}: a send naming media deleted since it was checked is refused as unknown media, and the messages written with it are stored`, async () => {
    await using db = await backend.open();
    const chat = (await db.store.createChat("c", "v")).chat;
    const media = await db.store.createMedia(pngOf(chat, "c", "ef"));
    // as the sweep of unsent media does between the send's check and its write
    assert.ok(await db.store.deleteUnsentMedia(media.id));
    // the first is written alone, the other two wait for it and go in one batch
    const [first, orphan, after] = await Promise.allSettled([
      db.store.insertMessage(text(chat, "first")),
      db.store.insertMessage(
        text(chat, null as unknown as string, { media_type: "image", media_id: media.id }),
      ),
      db.store.insertMessage(text(chat, "after")),
    ]);
    assert.equal(first.status, "fulfilled");
    assert.equal(after.status, "fulfilled", String((after as { reason?: unknown }).reason));
    assert.equal(after.value.message.seq, 2);
    assert.equal(orphan.status, "rejected");
    assert.ok(orphan.reason instanceof ChatError, String(orphan.reason));
    assert.equal(orphan.reason.code, "not_found");
    assert.deepEqual(orphan.reason.issues, [{ path: "media_id", message: "unknown" }]);
  });

  Deno.test(`${backend.name}: a send answers with the message exactly as stored`, async () => {
    await using db = await backend.open();
    const chat = (await db.store.createChat("c", "v")).chat;
    const media = await db.store.createMedia(pngOf(chat, "v", "ab"));
    const fromVendor = { sender_id: "v", sender_side: "vendor" as const, receiver_id: "c" };
    // alone, and several in one batch, both sides, text and media, with and without client_id
    const sent = [
      await db.store.insertMessage(text(chat, "alone", { client_id: "k1" })),
      ...await Promise.all([
        db.store.insertMessage(text(chat, "  spaced\u00a0ünïcode 🙂  ")),
        db.store.insertMessage(
          text(chat, null as unknown as string, {
            ...fromVendor,
            media_type: "image",
            media_id: media.id,
          }),
        ),
        db.store.insertMessage(text(chat, "again", { client_id: "k1" })),
        db.store.insertMessage(text(chat, "reply", { ...fromVendor, client_id: "k2" })),
        // stored with U+FFFD for the lone surrogates, as their UTF-8 encoding has it
        db.store.insertMessage(text(chat, "lone \ud800 surrogate", { client_id: "k\udfff" })),
      ]),
    ];
    assert.deepEqual(
      sent.map((result) => result.duplicate),
      [false, false, false, true, false, false],
    );
    for (const result of sent) {
      assert.deepEqual(result.message, await db.store.getMessage(result.message.id));
    }
    // the newest message went to the vendor side; the read gives the chat's last seq too
    const { last_seq, ...fresh } = await db.store.unread(chat.id, "vendor", 50);
    assert.deepEqual(sent.at(-1)!.receiver_unread, fresh);
    assert.equal(last_seq, sent.at(-1)!.message.seq);
  });

  Deno.test(`${backend.name}: unread counts follow sends, reads and deletes`, async () => {
    await using db = await backend.open();
    const chat = (await db.store.createChat("c", "v")).chat;
    const sent = [];
    for (let i = 0; i < 4; i++) sent.push(await db.store.insertMessage(text(chat, `m${i}`)));
    assert.equal(sent[3]!.receiver_unread?.count, 4);
    assert.deepEqual(sent[3]!.receiver_unread?.messages.map((m) => m.seq), [1, 2, 3, 4]);
    assert.equal((await db.store.unread(chat.id, "vendor", 50)).count, 4);
    assert.equal((await db.store.unread(chat.id, "customer", 50)).count, 0);

    const own = await db.store.markRead(chat.id, sent[0]!.message.id, "customer", chat.user_id);
    assert.equal(own?.changed, false, "the sender's side cannot mark it");
    const read = await db.store.markRead(chat.id, sent[0]!.message.id, "vendor", chat.vendor_id);
    assert.equal(read?.changed, true);
    assert.equal(
      (await db.store.markRead(chat.id, sent[0]!.message.id, "vendor", chat.vendor_id))?.changed,
      false,
    );
    await db.store.deleteMessage(sent[1]!.message.id, chat.user_id);
    const after = await db.store.insertMessage(text(chat, "m4"));
    assert.equal(after.receiver_unread?.count, 3);
    assert.deepEqual(after.receiver_unread?.messages.map((m) => m.seq), [3, 4, 5]);
    const upTo = await db.store.markReadUpTo(chat.id, "vendor", 4, chat.vendor_id);
    assert.deepEqual([upTo.count, upTo.up_to_seq], [2, 4]);
    const unread = await db.store.unread(chat.id, "vendor", 50);
    assert.equal(unread.count, 1);
    assert.deepEqual(unread.messages.map((m) => m.seq), [5]);
  });

  Deno.test(`${backend.name}: a read up to a seq past the last says the newest message it marked`, async () => {
    await using db = await backend.open();
    const chat = (await db.store.createChat("c", "v")).chat;
    const fromVendor = { sender_id: "v", sender_side: "vendor" as const, receiver_id: "c" };
    await db.store.insertMessage(text(chat, "to the vendor"));
    await db.store.insertMessage(text(chat, "to the customer", fromVendor));
    const all = await db.store.markReadUpTo(chat.id, "vendor", 2_147_483_647, chat.vendor_id);
    assert.deepEqual([all.count, all.up_to_seq], [1, 1]);
    const again = await db.store.markReadUpTo(chat.id, "vendor", 2_147_483_647, chat.vendor_id);
    assert.deepEqual([again.count, again.up_to_seq], [0, 0]);
  });

  Deno.test(`${backend.name}: the receiver side's mark changes a message though its sender's side marked it first in the same batch`, async () => {
    await using db = await backend.open();
    const chat = (await db.store.createChat("c", "v")).chat;
    const { message } = await db.store.insertMessage(text(chat, "hello"));
    // a send in flight: the two marks wait for it and are written together, in this order
    const busy = db.store.insertMessage(text(chat, "in flight"));
    const [own, theirs] = await Promise.all([
      db.store.markRead(chat.id, message.id, "customer", chat.user_id),
      db.store.markRead(chat.id, message.id, "vendor", chat.vendor_id),
      busy,
    ]);
    assert.equal(own?.changed, false, "the sender's side cannot mark it");
    assert.equal(theirs?.changed, true);
    assert.equal(theirs?.message.is_read, true);
    assert.equal((await db.store.unread(chat.id, "vendor", 50)).count, 1);
  });

  Deno.test(`${backend.name}: of two marks of one message in a batch, the one answered changed is the one stored`, async () => {
    await using db = await backend.open();
    await db.store.addVendorMember("v", "agent", "agent");
    const chat = (await db.store.createChat("c", "v")).chat;
    const sent = [];
    for (let i = 0; i < 8; i++) {
      sent.push((await db.store.insertMessage(text(chat, `m${i}`))).message);
    }
    const busy = db.store.insertMessage(text(chat, "in flight"));
    // two members of the vendor side, each marking every message, interleaved
    const marks = await Promise.all(
      sent.flatMap((message) =>
        ["agent", "v"].map(async (reader) => ({
          reader,
          result: await db.store.markRead(chat.id, message.id, "vendor", reader),
        }))
      ),
    );
    await busy;
    for (const message of sent) {
      const changed = marks.filter(({ result }) =>
        result?.message.id === message.id && result.changed
      );
      assert.equal(changed.length, 1, `one mark of ${message.seq} changed it`);
      const [stored] = await db.sql`select read_by from messages where id = ${message.id}`;
      assert.equal(stored?.read_by, changed[0]!.reader, `the reader of ${message.seq}`);
    }
  });

  Deno.test(`${backend.name}: each send's unread snapshot equals a fresh read`, async () => {
    await using db = await backend.open();
    const chat = (await db.store.createChat("c", "v")).chat;
    const fromVendor = { sender_id: "v", sender_side: "vendor" as const, receiver_id: "c" };
    const matchesFreshRead = async (result: InsertedMessage, side: Side) => {
      const fresh = await db.store.unread(chat.id, side, 50);
      assert.equal(result.receiver_unread?.count, fresh.count);
      assert.deepEqual(
        result.receiver_unread?.messages.map((m) => m.id),
        fresh.messages.map((m) => m.id),
      );
    };
    for (let round = 0; round < 6; round++) {
      // both directions, alone and batched, with a read now and then in between
      const [first, , third] = await Promise.all([
        db.store.insertMessage(text(chat, `c${round}`)),
        db.store.insertMessage(text(chat, `v${round}`, fromVendor)),
        db.store.insertMessage(text(chat, `c${round}b`)),
      ]);
      await matchesFreshRead(third!, "vendor");
      if (round % 2 === 1) {
        await db.store.markRead(chat.id, first!.message.id, "vendor", chat.vendor_id);
      }
      await matchesFreshRead(
        await db.store.insertMessage(text(chat, `v${round}b`, fromVendor)),
        "customer",
      );
      await matchesFreshRead(await db.store.insertMessage(text(chat, `c${round}c`)), "vendor");
    }
  });

  Deno.test(`${backend.name}: after reads, past the preview's 50, each send's unread snapshot equals a fresh read`, async () => {
    await using db = await backend.open();
    const chat = (await db.store.createChat("c", "v")).chat;
    const fromVendor = { sender_id: "v", sender_side: "vendor" as const, receiver_id: "c" };
    let seed = 7;
    const pick = (n: number) => (seed = (seed * 48271) % 2147483647) % n;
    const toVendor: InsertedMessage[] = [];
    for (let index = 0; index < 60; index++) {
      toVendor.push(await db.store.insertMessage(text(chat, `m${index}`)));
    }
    for (let step = 0; step < 40; step++) {
      // one or two reads of a message anywhere (inside the newest 50 or older), now and then
      // of a range
      for (let read = 0; read <= step % 2; read++) {
        const target = toVendor[pick(toVendor.length)]!.message;
        if (step % 7 === 6) {
          await db.store.markReadUpTo(chat.id, "vendor", target.seq, chat.vendor_id);
        } else await db.store.markRead(chat.id, target.id, "vendor", chat.vendor_id);
      }
      if (step % 5 === 0) await db.store.insertMessage(text(chat, `v${step}`, fromVendor));
      const sent = await db.store.insertMessage(text(chat, `c${step}`));
      toVendor.push(sent);
      const fresh = await db.store.unread(chat.id, "vendor", 50);
      assert.equal(sent.receiver_unread?.count, fresh.count, `count at step ${step}`);
      assert.deepEqual(
        sent.receiver_unread?.messages.map((m) => m.seq),
        fresh.messages.map((m) => m.seq),
        `messages at step ${step}`,
      );
    }
  });

  Deno.test(`${backend.name}: sends, read marks, reads up to a seq and deletions at once all succeed and add up`, async () => {
    await using db = await backend.open();
    const chat = (await db.store.createChat("c", "v")).chat;
    const fromVendor = { sender_id: "v", sender_side: "vendor" as const, receiver_id: "c" };
    const first = [];
    for (let index = 0; index < 20; index++) {
      first.push(await db.store.insertMessage(text(chat, `m${index}`)));
    }
    // group commits of sends and read marks run beside single statements on the same rows
    const results = await Promise.allSettled([
      ...first.slice(0, 10).map((sent) =>
        db.store.markRead(chat.id, sent.message.id, "vendor", chat.vendor_id)
      ),
      db.store.markReadUpTo(chat.id, "vendor", 15, chat.vendor_id),
      db.store.deleteMessage(first[17]!.message.id, "c"),
      ...Array.from({ length: 10 }, (_, index) => db.store.insertMessage(text(chat, `n${index}`))),
      ...Array.from(
        { length: 10 },
        (_, index) => db.store.insertMessage(text(chat, `v${index}`, fromVendor)),
      ),
    ]);
    assert.deepEqual(results.filter((result) => result.status === "rejected"), []);
    const fresh = await db.store.unread(chat.id, "vendor", 50);
    // 30 sent to the vendor side: 1..15 read, 18 deleted
    assert.equal(fresh.count, 14);
    assert.deepEqual(
      fresh.messages.map((message) => message.content),
      ["m15", "m16", "m18", "m19", ...Array.from({ length: 10 }, (_, index) => `n${index}`)],
    );
    assert.equal((await db.store.unread(chat.id, "customer", 50)).count, 10);
  });

  Deno.test(`${backend.name}: chats are read by id, many at once, as one by one`, async () => {
    await using db = await backend.open();
    const first = (await db.store.createChat("c", "v")).chat;
    const second = (await db.store.createChat("c2", "v")).chat;
    await db.store.insertMessage(text(second, "hi"));
    const unknown = crypto.randomUUID();
    const chats = await db.store.getChats([second.id, unknown, first.id]);
    const byId = (a: { id: string }, b: { id: string }) => a.id.localeCompare(b.id);
    const oneByOne = [await db.store.getChat(first.id), await db.store.getChat(second.id)];
    assert.deepEqual(chats.sort(byId), oneByOne.map((chat) => chat!).sort(byId));
    assert.equal(chats.find((chat) => chat.id === second.id)?.last_seq, 1);
    assert.deepEqual(await db.store.getChats([]), []);
  });

  Deno.test(`${backend.name}: a banned sender's message is refused`, async () => {
    await using db = await backend.open();
    const chat = (await db.store.createChat("c", "v")).chat;
    await db.store.ban({
      user_id: "c",
      moderator_id: "mod",
      reason: "spam",
      duration_seconds: null,
    });
    await assert.rejects(
      db.store.insertMessage(text(chat, "hi")),
      (error) => error instanceof ChatError && error.code === "forbidden",
    );
    assert.equal((await db.store.getChat(chat.id))?.last_seq, 0);
    await db.store.unban("c");
    assert.equal((await db.store.insertMessage(text(chat, "hi"))).message.seq, 1);
  });

  Deno.test(`${backend.name}: a banned sender's retry of a stored client_id is refused, the rest of its batch written`, async () => {
    await using db = await backend.open();
    const chat = (await db.store.createChat("c", "v")).chat;
    await db.store.insertMessage(text(chat, "before", { client_id: "k1" }));
    await db.store.ban({
      user_id: "c",
      moderator_id: "mod",
      reason: "spam",
      duration_seconds: null,
    });
    const retries = await Promise.allSettled([
      db.store.insertMessage(text(chat, "again", { client_id: "k1" })),
      db.store.insertMessage(
        text(chat, "reply", { sender_id: "v", sender_side: "vendor", receiver_id: "c" }),
      ),
    ]);
    const [retry, reply] = retries;
    assert.ok(
      retry?.status === "rejected" && retry.reason instanceof ChatError &&
        retry.reason.code === "forbidden",
      `the banned sender's retry: ${JSON.stringify(retry)}`,
    );
    assert.equal(reply?.status, "fulfilled", "the other side's send in the same batch");
  });

  Deno.test(`${backend.name}: only the chat's customer, vendor and vendor members still on the vendor may send`, async () => {
    await using db = await backend.open();
    const { chat, fromVendorSide } = await chatWithRemovedMember(db.store);
    const stranger = text(chat, "stranger", { sender_id: "x" });
    for (const refused of [fromVendorSide("gone", "removed"), stranger]) {
      await assert.rejects(
        db.store.insertMessage(refused),
        (error) => error instanceof ChatError && error.code === "forbidden",
        refused.sender_id,
      );
    }
    for (const [senderId, content] of [["agent", "member"], ["v", "vendor"]]) {
      await db.store.insertMessage(fromVendorSide(senderId!, content!));
    }
    await db.store.insertMessage(text(chat, "customer"));
    const page = await db.store.history(chat.id, { limit: 10 });
    assert.deepEqual(page.items.map((stored) => [stored.seq, stored.sender_id]), [
      [1, "agent"],
      [2, "v"],
      [3, "c"],
    ]);
  });

  Deno.test(`${backend.name}: a chat's activity never goes back: a send whose statement began before the chat's last change leaves updated_at as it was`, async () => {
    await using db = await backend.open();
    const chat = (await db.store.createChat("c", "v")).chat;
    // a later writer's mark, as a batch that began after this send's statement but took the
    // chat's row lock first leaves it
    const later = async () => {
      const [row] = await db.sql<[{ at: Date }]>`
        update chats set updated_at = date_trunc('milliseconds', now()) + interval '1 hour'
        where id = ${chat.id} returning updated_at as at`;
      return row.at.toISOString();
    };
    const expected = await later();
    await db.store.insertMessage(text(chat, "in a batch"));
    assert.equal((await db.store.getChat(chat.id))!.updated_at, expected, "a batch");
    // written alone: the batch it came in failed (the NUL)
    const alone = await later();
    await Promise.allSettled([
      db.store.insertMessage(text(chat, "first")),
      db.store.insertMessage(text(chat, "nul \u0000 inside")),
      db.store.insertMessage(text(chat, "tried alone")),
    ]);
    assert.equal((await db.store.getChat(chat.id))!.updated_at, alone, "tried alone");
    assert.equal((await db.store.getChat(chat.id))!.last_seq, 3);
  });

  Deno.test(`${backend.name}: a message tried alone after its batch failed is refused when its sender is not in the chat`, async () => {
    await using db = await backend.open();
    const { chat, fromVendorSide } = await chatWithRemovedMember(db.store);
    // the first starts a batch; the rest wait for it and are written together, and the text the
    // database refuses fails that batch, so that each of its messages is tried alone
    const results = await Promise.allSettled([
      db.store.insertMessage(text(chat, "before")),
      db.store.insertMessage(text(chat, "nul \u0000 inside")),
      db.store.insertMessage(fromVendorSide("gone", "removed")),
      db.store.insertMessage(text(chat, "stranger", { sender_id: "x" })),
      db.store.insertMessage(fromVendorSide("agent", "member")),
      db.store.insertMessage(fromVendorSide("v", "vendor")),
      db.store.insertMessage(text(chat, "customer")),
    ]);
    const codes = results.map((result) =>
      result.status === "fulfilled"
        ? "sent"
        : result.reason instanceof ChatError
        ? result.reason.code
        : String(result.reason)
    );
    assert.deepEqual(codes, [
      "sent",
      "invalid_payload",
      "forbidden",
      "forbidden",
      "sent",
      "sent",
      "sent",
    ]);
    const page = await db.store.history(chat.id, { limit: 10 });
    assert.deepEqual(page.items.map((stored) => stored.content), [
      "before",
      "member",
      "vendor",
      "customer",
    ]);
  });

  Deno.test(`${backend.name}: the sanctions of many users are read in one query: bans in force and the newest disconnect`, async () => {
    await using db = await backend.open();
    const by = { moderator_id: "mod", target_message_id: null, reason: "support" };
    assert.deepEqual(await db.store.sanctionsOf([]), new Map());
    await db.store.ban({
      user_id: "banned",
      moderator_id: "mod",
      reason: "spam",
      duration_seconds: null,
    });
    await db.store.ban({
      user_id: "ban-over",
      moderator_id: "mod",
      reason: "spam",
      duration_seconds: -60, // ran out a minute ago
    });
    const disconnect = await db.store.recordModeration({
      ...by,
      action: "disconnect_user",
      target_user_id: "gone",
    });
    await db.store.recordModeration({ ...by, action: "ban_user", target_user_id: "logged" });
    // ids are data, never SQL: a quote or a brace is an id like any other
    const odd = `x'); drop table bans; --"{}`;
    await db.store.ban({
      user_id: odd,
      moderator_id: "mod",
      reason: "spam",
      duration_seconds: null,
    });
    const sanctions = await db.store.sanctionsOf(
      ["banned", "ban-over", "gone", "logged", "clean", odd, "banned"],
    );
    assert.deepEqual([...sanctions.keys()].sort(), ["banned", "gone", odd].sort());
    const bannedOnly = { banned: true, disconnectedOn: null };
    assert.deepEqual(sanctions.get("banned"), bannedOnly);
    assert.deepEqual(sanctions.get(odd), bannedOnly);
    const gone = sanctions.get("gone")!;
    assert.equal(gone.banned, false);
    // as the disconnect's own record has it, which its event carries
    assert.equal(gone.disconnectedOn, disconnect.created_at);
  });

  Deno.test(`${backend.name}: the users banned or disconnected within a window are found by the moderation log`, async () => {
    await using db = await backend.open();
    const by = { moderator_id: "mod", target_message_id: null, reason: "support" };
    const window = { withinMs: 60_000 };
    assert.deepEqual(await db.store.sanctionedWithin(window), []);
    const odd = `x'); drop table moderation_actions; --"{}`;
    await db.store.recordModeration({ ...by, action: "ban_user", target_user_id: "banned" });
    await db.store.recordModeration({ ...by, action: "disconnect_user", target_user_id: "gone" });
    await db.store.recordModeration({ ...by, action: "disconnect_user", target_user_id: "gone" });
    await db.store.recordModeration({ ...by, action: "disconnect_user", target_user_id: odd });
    // a lifted ban and a deletion are no sanction of a user
    await db.store.recordModeration({ ...by, action: "unban_user", target_user_id: "lifted" });
    await db.store.recordModeration({ ...by, action: "delete_message", target_user_id: "author" });
    assert.deepEqual(
      (await db.store.sanctionedWithin(window)).sort(),
      ["banned", "gone", odd].sort(),
    );
    await assertNoneOutsideItsWindow((window) => db.store.sanctionedWithin(window));
  });

  Deno.test(`${backend.name}: the vendor members added within a window are found while members`, async () => {
    await using db = await backend.open();
    const window = { withinMs: 60_000 };
    assert.deepEqual(await db.store.membersAddedWithin(window), []);
    await db.store.addVendorMember("v", "agent", "agent");
    await db.store.addVendorMember("v", "left", "agent");
    await db.store.removeVendorMember("v", "left");
    // a role changed is no new membership, and keeps its time
    await db.store.addVendorMember("v", "agent", "owner");
    assert.deepEqual(await db.store.membersAddedWithin(window), [
      { vendor_id: "v", user_id: "agent" },
    ]);
    await assertNoneOutsideItsWindow((window) => db.store.membersAddedWithin(window));
  });

  Deno.test(`${backend.name}: the vendor members removed within a window are found, unless added again`, async () => {
    await using db = await backend.open();
    const window = { withinMs: 60_000 };
    assert.deepEqual(await db.store.membersRemovedWithin(window), []);
    for (const userId of ["gone", "back", "kept"]) {
      await db.store.addVendorMember("v", userId, "agent");
    }
    assert.equal(await db.store.removeVendorMember("v", "gone"), true);
    assert.equal(await db.store.removeVendorMember("v", "gone"), false, "not a member any more");
    assert.equal(await db.store.removeVendorMember("v", "back"), true);
    await db.store.addVendorMember("v", "back", "agent");
    assert.deepEqual(await db.store.membersRemovedWithin(window), [
      { vendor_id: "v", user_id: "gone" },
    ]);
    await assertNoneOutsideItsWindow((window) => db.store.membersRemovedWithin(window));
  });

  Deno.test(`${backend.name}: a member's removal prunes the removals older than a day`, async () => {
    await using db = await backend.open();
    for (const userId of ["long gone", "gone yesterday", "gone now"]) {
      await db.store.addVendorMember("v", userId, "agent");
    }
    await db.store.removeVendorMember("v", "long gone");
    await db.store.removeVendorMember("v", "gone yesterday");
    await db.sql`
      update vendor_member_removals set removed_at = now() - case user_id
        when 'long gone' then interval '25 hours' else interval '23 hours' end`;
    await db.store.removeVendorMember("v", "gone now");
    const kept = await db.sql<Array<{ user_id: string }>>`
      select user_id from vendor_member_removals order by removed_at`;
    assert.deepEqual(kept.map((row) => row.user_id), ["gone yesterday", "gone now"]);
  });

  Deno.test(`${backend.name}: the chats created within a window are found, oldest first`, async () => {
    await using db = await backend.open();
    const window = { withinMs: 60_000 };
    assert.deepEqual(await db.store.chatsCreatedWithin(window), []);
    const first = (await db.store.createChat("c1", "v")).chat;
    // the embedded database's clock can give two chats made back to back the same created_at,
    // and the order of those is their ids'
    await new Promise((resolve) => setTimeout(resolve, 10));
    const second = (await db.store.createChat("c2", "v")).chat;
    // a chat asked for again is not created again
    await db.store.createChat("c1", "v");
    const found = await db.store.chatsCreatedWithin(window);
    assert.deepEqual(found.map((chat) => [chat.id, chat.user_id, chat.vendor_id]), [
      [first.id, "c1", "v"],
      [second.id, "c2", "v"],
    ]);
    await assertNoneOutsideItsWindow((window) => db.store.chatsCreatedWithin(window));
  });

  Deno.test(`${backend.name}: messages edited or deleted within a window are found in their current state`, async () => {
    await using db = await backend.open();
    const { chat, other, sent, elsewhere } = await twoChatsSent(db.store, 4);
    assert.deepEqual(await db.store.amendedWithin([chat.id, other.id], { withinMs: 60_000 }), []);

    const asC = { userId: "c", chatId: chat.id };
    await db.store.editOwnMessage(asC, sent[2]!.id, "m3, edited");
    await db.store.deleteMessage(sent[0]!.id, "c");
    await db.store.editOwnMessage(asC, sent[1]!.id, "m2, edited");
    await db.store.deleteMessage(sent[1]!.id, "c");
    await db.store.editOwnMessage({ userId: "c2", chatId: other.id }, elsewhere.id, "o1, edited");
    await db.store.markRead(chat.id, sent[3]!.id, "vendor", chat.vendor_id);
    const amended = await db.store.amendedWithin([chat.id], { withinMs: 60_000 });
    // by seq; a read mark is not an edit (see readWithin); another chat's are not asked for
    assert.deepEqual(amended.map((m) => [m.seq, m.content, m.deleted, m.deleted_by]), [
      [1, "m1", true, "c"],
      [2, "m2, edited", true, "c"],
      [3, "m3, edited", false, null],
    ]);
    assert.ok(amended[2]!.edited_at !== null);
    const both = await db.store.amendedWithin([other.id, chat.id], { withinMs: 60_000 });
    assert.deepEqual(both.filter((m) => m.chat_id === other.id).map((m) => m.content), [
      "o1, edited",
    ]);
    assert.equal(both.length, 4);
    await assertNoneOutsideItsWindow((window) => db.store.amendedWithin([chat.id], window));
    assert.deepEqual(await db.store.amendedWithin([], { withinMs: 60_000 }), []);
  });

  Deno.test(`${backend.name}: read marks within a window are found with their reader, the newest up to a limit`, async () => {
    await using db = await backend.open();
    await db.store.addVendorMember("v", "agent", "agent");
    const { chat, other, sent, elsewhere } = await twoChatsSent(db.store, 6);
    assert.deepEqual(await db.store.readWithin([chat.id, other.id], { withinMs: 60_000 }, 100), []);

    await db.store.markRead(chat.id, sent[4]!.id, "vendor", "agent");
    await db.store.markReadUpTo(chat.id, "vendor", 3, "v");
    await db.store.markRead(chat.id, sent[5]!.id, "vendor", "v");
    await db.store.deleteMessage(sent[5]!.id, "c");
    await db.store.markRead(other.id, elsewhere.id, "vendor", "v");
    const reads = await db.store.readWithin([chat.id], { withinMs: 60_000 }, 100);
    // by seq; a deleted message's mark is left out; another chat's are not asked for
    assert.deepEqual(reads.map((read) => [read.message_id, read.seq, read.reader_id]), [
      [sent[0]!.id, 1, "v"],
      [sent[1]!.id, 2, "v"],
      [sent[2]!.id, 3, "v"],
      [sent[4]!.id, 5, "agent"],
    ]);
    for (const read of reads) {
      assert.equal(read.chat_id, chat.id);
      assert.ok(Number.isFinite(Date.parse(read.read_at)), read.read_at);
    }
    const stored = await db.store.getMessage(sent[0]!.id);
    assert.equal(reads[0]!.read_at, stored?.read_at);
    // at most the limit, the newest: none left out is newer than one returned
    const all = await db.store.readWithin([other.id, chat.id], { withinMs: 60_000 }, 100);
    assert.equal(all.length, 5);
    const newest = await db.store.readWithin([other.id, chat.id], { withinMs: 60_000 }, 3);
    assert.equal(newest.length, 3);
    const returned = new Set(newest.map((read) => read.message_id));
    const oldestReturned = Math.min(...newest.map((read) => Date.parse(read.read_at)));
    for (const read of all.filter((read) => !returned.has(read.message_id))) {
      assert.ok(Date.parse(read.read_at) <= oldestReturned, `${read.read_at} left out`);
    }
    await assertNoneOutsideItsWindow((window) => db.store.readWithin([chat.id], window, 100));
    assert.deepEqual(await db.store.readWithin([], { withinMs: 60_000 }, 100), []);
  });

  Deno.test(`${backend.name}: the read marks of a window are tallied per chat, with the window's bounds`, async () => {
    await using db = await backend.open();
    const { chat, other, sent, elsewhere } = await twoChatsSent(db.store, 4);
    const quiet = (await db.store.createChat("c3", "v")).chat;
    const window = { withinMs: 60_000 };
    const before = Date.now();
    const none = await db.store.readTallies([chat.id, other.id, quiet.id], window);
    assert.deepEqual(none.chats, []);
    assert.ok(Math.abs(none.toMs - before) < 5_000, `the window ends now: ${none.toMs}`);
    assert.equal(none.toMs - none.fromMs, 60_000);

    await db.store.markReadUpTo(chat.id, "vendor", 2, "v");
    await db.store.markRead(chat.id, sent[3]!.id, "vendor", "v");
    await db.store.deleteMessage(sent[3]!.id, "c");
    await db.store.markRead(other.id, elsewhere.id, "vendor", "v");
    const tallies = await db.store.readTallies([chat.id, other.id, quiet.id], window);
    // the marks themselves, as readWithin gives them and a deleted message's as well
    const readAt = async (messageId: string) =>
      Date.parse((await db.store.getMessage(messageId))!.read_at!);
    const offsets = async (messageIds: string[]) => {
      let sum = 0;
      for (const messageId of messageIds) sum += (await readAt(messageId)) - tallies.fromMs;
      return sum;
    };
    const byChat = new Map(tallies.chats.map(({ chat_id, ...tally }) => [chat_id, tally]));
    assert.deepEqual(
      byChat,
      new Map([
        [chat.id, { reads: 3, offsetsMs: await offsets([sent[0]!.id, sent[1]!.id, sent[3]!.id]) }],
        [other.id, { reads: 1, offsetsMs: await offsets([elsewhere.id]) }],
      ]),
    );
    assert.ok(tallies.fromMs < (await readAt(sent[0]!.id)), "marks are after the start");
    assert.deepEqual((await db.store.readTallies([chat.id], window)).chats.map((t) => t.chat_id), [
      chat.id,
    ]);
    await assertNoneOutsideItsWindow(async (window) =>
      (await db.store.readTallies([chat.id], window)).chats
    );
  });

  Deno.test(`${backend.name}: history pages back and forward by seq`, async () => {
    await using db = await backend.open();
    const chat = (await db.store.createChat("c", "v")).chat;
    for (let i = 1; i <= 7; i++) await db.store.insertMessage(text(chat, `m${i}`));
    const latest = await db.store.history(chat.id, { limit: 3 });
    assert.deepEqual(latest.items.map((m) => m.seq), [5, 6, 7]);
    assert.equal(latest.has_more, true);
    const older = await db.store.history(chat.id, { limit: 3, before_seq: 5 });
    assert.deepEqual(older.items.map((m) => m.seq), [2, 3, 4]);
    const oldest = await db.store.history(chat.id, { limit: 3, before_seq: 2 });
    assert.deepEqual([oldest.items.map((m) => m.seq), oldest.has_more], [[1], false]);
    const newer = await db.store.history(chat.id, { limit: 3, after_seq: 2 });
    assert.deepEqual([newer.items.map((m) => m.seq), newer.has_more], [[3, 4, 5], true]);
  });

  Deno.test(`${backend.name}: a read a user asks for is answered while they are in the chat and not banned, and otherwise refused saying why`, async () => {
    await using db = await backend.open();
    const { store } = db;
    const { chat, fromVendorSide } = await chatWithRemovedMember(store);
    for (let i = 1; i <= 3; i++) {
      await store.insertMessage(text(chat, `to the vendor ${i}`));
      await store.insertMessage(fromVendorSide("agent", `to the customer ${i}`));
    }
    const theirs = (await store.createChat("x", "v2")).chat;
    await store.ban({ user_id: "x", moderator_id: "mod", reason: "spam", duration_seconds: null });
    /** What each asked read of `chatId` by `userId` gives: its answer, or why it was refused. */
    const asked = async (userId: string, chatId: string) => {
      const answers = [
        await store.historyAsked({ userId, chatId }, { limit: 4 }),
        await store.historyAsked({ userId, chatId }, { limit: 4, after_seq: 1 }),
        await store.unreadAsked({ userId, chatId }, 2),
      ];
      return answers.map((answer) => "refused" in answer ? answer.refused : answer.read);
    };
    const as = async (side: Side) => [
      { ...await store.history(chat.id, { limit: 4 }), chat_id: chat.id },
      { ...await store.history(chat.id, { limit: 4, after_seq: 1 }), chat_id: chat.id },
      {
        ...await store.unread(chat.id, side, 2),
        chat_id: chat.id,
        last_seq: (await store.lastSeqs([chat.id])).get(chat.id),
      },
    ];
    // the chat named in upper case is answered under its id as stored
    assert.deepEqual(await asked("c", chat.id.toUpperCase()), await as("customer"));
    assert.deepEqual(await asked("v", chat.id), await as("vendor"));
    assert.deepEqual(await asked("agent", chat.id), await as("vendor"));
    const outsider = ["outsider", "outsider", "outsider"];
    assert.deepEqual(await asked("gone", chat.id), outsider);
    assert.deepEqual(await asked("c", theirs.id), outsider);
    assert.deepEqual(await asked("c", crypto.randomUUID()), outsider);
    // banned and not in the chat: refused as any outsider, so a chat's existence is not told
    assert.deepEqual(await asked("x", chat.id), outsider);
    assert.deepEqual(await asked("x", theirs.id), ["banned", "banned", "banned"]);

    const list = async (userId: string) => {
      const answer = await store.listChatsAsked(userId, { limit: 1 });
      return "refused" in answer ? answer.refused : answer.read;
    };
    assert.deepEqual(await list("c"), await store.listChatsOf("c", { limit: 1 }));
    assert.deepEqual(await list("nobody"), { items: [], has_more: false });
    assert.equal(await list("x"), "banned");

    await store.ban({ user_id: "agent", moderator_id: "mod", reason: "spam", duration_seconds: 0 });
    assert.deepEqual(await asked("agent", chat.id), await as("vendor"), "a ban run out");
    await store.ban({ user_id: "c", moderator_id: "mod", reason: "spam", duration_seconds: null });
    assert.deepEqual(await asked("c", chat.id), ["banned", "banned", "banned"]);
    assert.equal(await list("c"), "banned");
    await store.unban("c");
    assert.deepEqual(await asked("c", chat.id), await as("customer"));
  });

  Deno.test(`${backend.name}: a change of one's own message is made while they are in the chat and not banned, and otherwise refused saying why`, async () => {
    await using db = await backend.open();
    const { store } = db;
    const { chat, fromVendorSide } = await chatWithRemovedMember(store);
    const theirs = (await store.createChat("x", "v2")).chat;
    const mine = (await store.insertMessage(text(chat, "mine"))).message;
    const agents = (await store.insertMessage(fromVendorSide("agent", "the agent's"))).message;
    const xs = (await store.insertMessage(
      text(theirs, "x's", { sender_id: "x", receiver_id: "v2" }),
    )).message;
    const media = await store.createMedia(pngOf(chat, "c", "ab"));
    const image = (await store.insertMessage(
      text(chat, null as unknown as string, { media_type: "image", media_id: media.id }),
    )).message;
    const [c, agent, gone, x] = [
      { userId: "c", chatId: chat.id },
      { userId: "agent", chatId: chat.id },
      { userId: "gone", chatId: chat.id },
      { userId: "x", chatId: theirs.id },
    ];
    /** The change's refusal, or the message's text, who deleted it (if anyone), and if changed. */
    const outcome = (change: OwnChange) =>
      "refused" in change
        ? change.refused
        : [change.message.content, change.message.deleted_by, change.changed];
    const edit = async (asker: ChatAsker, id: string, content: string) =>
      outcome(await store.editOwnMessage(asker, id, content));
    const remove = async (asker: ChatAsker, id: string) =>
      outcome(await store.deleteOwnMessage(asker, id));
    const vendorUnread = async () => (await store.unread(chat.id, "vendor", 1)).count;

    assert.deepEqual(await edit(c, agents.id, "x"), "not_sender");
    assert.deepEqual(await remove(c, agents.id), "not_sender");
    for (const id of [xs.id, crypto.randomUUID()]) {
      assert.deepEqual(await edit(c, id, "x"), "unknown", "another chat's, or none");
      assert.deepEqual(await remove(c, id), "unknown", "another chat's, or none");
    }
    assert.deepEqual(await edit(c, image.id, "x"), "not_text");
    assert.deepEqual(await edit(gone, agents.id, "x"), "outsider");
    assert.deepEqual(await remove(gone, agents.id), "outsider");
    assert.deepEqual(await edit({ ...c, chatId: theirs.id }, xs.id, "x"), "outsider");

    // the message's own id in upper case is the message
    assert.deepEqual(await edit(c, mine.id.toUpperCase(), "mine, edited"), [
      "mine, edited",
      null,
      true,
    ]);
    assert.deepEqual(await edit(c, mine.id, "mine, edited"), ["mine, edited", null, false]);
    assert.equal((await store.getMessage(mine.id))?.content, "mine, edited");
    assert.equal(await vendorUnread(), 2);
    const deleted = await store.deleteOwnMessage(c, mine.id);
    assert.ok("message" in deleted && deleted.changed);
    // whom to tell, with no read of the chat besides
    assert.deepEqual(deleted.chat, { id: chat.id, user_id: "c", vendor_id: chat.vendor_id });
    assert.deepEqual(deleted.message, await store.getMessage(mine.id));
    assert.deepEqual([deleted.message.deleted, deleted.message.deleted_by], [true, "c"]);
    assert.equal(await vendorUnread(), 1, "the deleted message was unread");
    // one's own tombstone is done again (a retry), changing nothing; another's is unknown
    assert.deepEqual(await remove(c, mine.id), ["mine, edited", "c", false]);
    assert.equal(await vendorUnread(), 1);
    assert.deepEqual(await edit(c, mine.id, "back"), "unknown");
    assert.deepEqual(await remove(agent, mine.id), "unknown");
    // deleted by a moderator: the sender's deletion is done
    await store.deleteMessage(xs.id, "mod");
    assert.deepEqual(await remove(x, xs.id), ["x's", "mod", false]);

    await store.ban({ user_id: "agent", moderator_id: "mod", reason: "spam", duration_seconds: 0 });
    assert.deepEqual(await edit(agent, agents.id, "a ban run out"), ["a ban run out", null, true]);
    await store.ban({ user_id: "c", moderator_id: "mod", reason: "spam", duration_seconds: null });
    // banned first: the refusal a send gets
    for (const id of [image.id, agents.id, crypto.randomUUID()]) {
      assert.deepEqual(await edit(c, id, "x"), "banned");
      assert.deepEqual(await remove(c, id), "banned");
    }
    assert.deepEqual(await edit({ ...c, chatId: theirs.id }, xs.id, "x"), "banned");
    await store.removeVendorMember("v", "agent");
    assert.deepEqual(await edit(agent, agents.id, "x"), "outsider");
    assert.deepEqual(await remove(agent, agents.id), "outsider");
    // nothing refused changed anything
    assert.deepEqual(
      [await store.getMessage(agents.id), await store.getMessage(image.id)].map((m) => [
        m?.content,
        m?.deleted,
      ]),
      [["a ban run out", false], [null, false]],
    );
  });

  Deno.test(`${backend.name}: a moderator's deletion names the chat's parties and audits the message's sender in its own statement; one deleted already is audited alone, an unknown one not at all`, async () => {
    await using db = await backend.open();
    const { store, sql } = db;
    const chat = (await store.createChat("c", "v")).chat;
    const spam = (await store.insertMessage(text(chat, "spam"))).message;
    const reply = (await store.insertMessage(
      text(chat, "reply", { sender_id: "v", sender_side: "vendor", receiver_id: "c" }),
    )).message;
    const audit = { action: "delete_message", moderator_id: "mod", reason: "spam" };
    const audited = async () => [
      ...await sql<Array<{ target_user_id: string; target_message_id: string }>>`
        select target_user_id, target_message_id from moderation_actions
        where action = 'delete_message' order by created_at, id`,
    ];
    const unread = async () => [
      (await store.unread(chat.id, "vendor", 1)).count,
      (await store.unread(chat.id, "customer", 1)).count,
    ];
    assert.deepEqual(await unread(), [1, 1]);

    // the message's own id in upper case is the message
    const deleted = await store.deleteMessage(spam.id.toUpperCase(), "mod", { audit });
    assert.ok(deleted?.changed);
    assert.deepEqual(deleted.chat, { id: chat.id, user_id: "c", vendor_id: "v" });
    assert.deepEqual(deleted.message, await store.getMessage(spam.id));
    assert.deepEqual([deleted.message.deleted, deleted.message.deleted_by], [true, "mod"]);
    assert.deepEqual(await unread(), [0, 1], "the deleted message was unread");
    assert.deepEqual(await audited(), [{ target_user_id: "c", target_message_id: spam.id }]);

    const again = await store.deleteMessage(spam.id, "mod2", { audit });
    assert.deepEqual(again, { message: deleted.message, changed: false });
    assert.deepEqual(await unread(), [0, 1]);
    assert.equal(await store.deleteMessage(crypto.randomUUID(), "mod", { audit }), null);
    // the vendor's message is aimed at the vendor; without `audit`, none is written
    assert.ok((await store.deleteMessage(reply.id, "mod", { audit }))?.changed);
    const unaudited = (await store.insertMessage(text(chat, "unaudited"))).message;
    assert.ok((await store.deleteMessage(unaudited.id, "mod"))?.changed);
    assert.deepEqual(await unread(), [0, 0]);
    assert.deepEqual(await audited(), [
      { target_user_id: "c", target_message_id: spam.id },
      { target_user_id: "c", target_message_id: spam.id },
      { target_user_id: "v", target_message_id: reply.id },
    ]);

    // an audit row that cannot be written leaves the message and the counters as they were
    const kept = (await store.insertMessage(text(chat, "kept"))).message;
    await sql`alter table moderation_actions
                add constraint refuse_test_reason check (reason <> 'unrecordable')`;
    await assert.rejects(
      store.deleteMessage(kept.id, "mod", { audit: { ...audit, reason: "unrecordable" } }),
    );
    assert.equal((await store.getMessage(kept.id))?.deleted, false);
    assert.deepEqual(await unread(), [1, 0]);
    assert.equal((await audited()).length, 3);
  });

  Deno.test(`${backend.name}: strings with SQL in them are stored as they are`, async () => {
    await using db = await backend.open();
    const evil = "'); drop table messages; -- \u0000".replace("\u0000", "\u0001");
    const chat = (await db.store.createChat(evil, "v'--")).chat;
    const sent = await db.store.insertMessage(text(chat, evil));
    assert.equal((await db.store.getMessage(sent.message.id))?.content, evil);
    assert.equal((await db.store.membership(chat.id, evil))?.side, "customer");
  });

  Deno.test(`${backend.name}: vendor members act on the vendor side`, async () => {
    await using db = await backend.open();
    const chat = (await db.store.createChat("c", "v")).chat;
    assert.equal(await db.store.membership(chat.id, "agent"), null);
    await db.store.addVendorMember("v", "agent", "agent");
    assert.equal((await db.store.membership(chat.id, "agent"))?.side, "vendor");
    assert.deepEqual((await db.store.chatsOf("agent")).map((m) => m.chat.id), [chat.id]);
    assert.equal(await db.store.removeVendorMember("v", "agent"), true);
    assert.equal(await db.store.membership(chat.id, "agent"), null);
  });

  Deno.test(`${backend.name}: memberships reads the user's side in many chats at once, leaving out the others`, async () => {
    await using db = await backend.open();
    const asMember = (await db.store.createChat("c1", "v")).chat;
    const asCustomer = (await db.store.createChat("agent", "v2")).chat;
    const notTheirs = (await db.store.createChat("c2", "v3")).chat;
    await db.store.addVendorMember("v", "agent", "agent");
    const found = await db.store.memberships(
      [asMember.id, asCustomer.id, notTheirs.id, crypto.randomUUID()],
      "agent",
    );
    assert.deepEqual(
      found.map((m) => [m.chat.id, m.side]).sort(),
      [[asMember.id, "vendor"], [asCustomer.id, "customer"]].sort(),
    );
    assert.deepEqual(await db.store.memberships([], "agent"), []);
  });

  Deno.test(`${backend.name}: the chat list pages by activity without skipping ties`, async () => {
    await using db = await backend.open();
    const ids = [];
    for (let i = 0; i < 7; i++) ids.push((await db.store.createChat("c", `v${i}`)).chat.id);
    const seen: string[] = [];
    let before: string | undefined;
    for (;;) {
      const page = await db.store.listChatsOf(
        "c",
        before === undefined ? { limit: 2 } : {
          before,
          limit: 2,
        },
      );
      seen.push(...page.items.map((item) => item.chat_id));
      if (!page.has_more) break;
      before = page.items.at(-1)!.updated_at;
    }
    assert.deepEqual([...seen].sort(), [...ids].sort());
    assert.equal(new Set(seen).size, ids.length);
  });
}
