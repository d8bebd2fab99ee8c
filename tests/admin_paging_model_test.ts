/**
 * The admin plane's lists against the database as a model: a full pass over a quiet snapshot
 * gives every row once in the documented order at every page size, and passes taken while
 * WebSocket clients on two instances send, delete and read, and moderators ban and disconnect,
 * never repeat a row nor skip one that existed before the pass began.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import postgres from "postgres";
import { type AdminClient, failure, type Reply, Status } from "./support/admin_client.ts";
import { startCluster } from "./support/service.ts";
import { joinChat, seedMessages, sendText } from "./support/steps.ts";
import { follow } from "./support/watch_stream.ts";

const by = { moderator_id: "mod", reason: "test" };

interface Lister {
  method: string;
  request: Record<string, unknown>;
  field: string;
  key: (row: Reply) => string;
}

/** One full pass, page sizes taken from `sizes` in turn; the rows in the order given. */
async function pass(admin: AdminClient, list: Lister, sizes: number[]): Promise<string[]> {
  const seen: string[] = [];
  let page_token = "";
  let turn = 0;
  do {
    const page_size = sizes[turn++ % sizes.length]!;
    const reply = await admin.call(list.method, { ...list.request, page_size, page_token });
    const rows = reply[list.field] as Reply[];
    const effective = page_size === 0 ? 50 : Math.min(page_size, 500);
    assert.ok(rows.length <= effective, `${list.method}: ${rows.length} rows for ${page_size}`);
    if (reply.next_page_token !== "") {
      assert.ok(rows.length > 0, `${list.method}: an empty page with a next page`);
    }
    seen.push(...rows.map(list.key));
    page_token = reply.next_page_token;
  } while (page_token !== "" && turn < 5_000);
  return seen;
}

Deno.test("admin lists give each row once in order, quiet or under traffic on two instances", async () => {
  await using cluster = await startCluster({
    grpc: true,
    instances: 2,
    env: { WS_RATE_PER_SECOND: "1000", WS_RATE_BURST: "1000" },
  });
  const admin = await cluster.admin(0);
  const other = await cluster.admin(1);
  const sql = postgres(cluster.databaseUrl, { max: 2, onnotice: () => {} });
  try {
    const chats: Reply[] = [];
    for (let index = 0; index < 4; index++) {
      chats.push(await admin.call("CreateChat", { user_id: `c${index}`, vendor_id: "acme" }));
    }
    for (const [index, chat] of chats.entries()) {
      await seedMessages(cluster, chat.id, {
        from: `c${index}`,
        to: "acme",
        count: 12,
        text: (n) => `lamp ${n % 3 === 0 ? "lamp" : "red"} ${n}`,
      });
    }
    for (let index = 0; index < 9; index++) {
      await admin.call("BanUser", {
        user_id: `b${index}`,
        ...by,
        duration_seconds: index % 3 * 600,
      });
      await other.call("DisconnectUser", { user_id: `d${index}`, ...by });
    }
    const [first] = await sql<[{ id: string }]>`
      select id from messages where chat_id = ${chats[0]!.id} and seq = 2`;
    await admin.call("DeleteMessage", { message_id: first.id, ...by });

    const lists: Record<string, Lister> = {
      chats: { method: "ListChats", request: {}, field: "chats", key: (row) => row.id },
      vendor: {
        method: "ListChats",
        request: { vendor_id: "acme" },
        field: "chats",
        key: (row) => row.id,
      },
      messages: {
        method: "ListMessages",
        request: { chat_id: chats[1]!.id, include_deleted: true },
        field: "messages",
        key: (row) => row.id,
      },
      search: {
        method: "SearchMessages",
        request: { query: "lamp", include_deleted: true },
        field: "messages",
        key: (row) => row.id,
      },
      actions: {
        method: "ListModerationActions",
        request: {},
        field: "actions",
        key: (row) => row.id,
      },
      bans: { method: "ListBans", request: {}, field: "bans", key: (row) => row.user_id },
    };
    const expected = async () => ({
      chats: (await sql`select id from chats order by created_at desc, id desc`).map((r) => r.id),
      vendor: (await sql`
        select id from chats where vendor_id = 'acme' order by created_at desc, id desc`)
        .map((r) => r.id),
      messages: (await sql`
        select id from messages where chat_id = ${chats[1]!.id} order by seq desc`)
        .map((r) => r.id),
      search: (await sql`
        select id from messages m, websearch_to_tsquery('simple', 'lamp') q
        where m.search_vector @@ q
        order by ts_rank(m.search_vector, q, 1) desc, created_at desc, seq desc, id desc`)
        .map((r) => r.id),
      actions: (await sql`select id from moderation_actions order by created_at desc, id desc`)
        .map((r) => r.id),
      bans: (await sql`
        select user_id from bans where expires_at is null or expires_at > now()
        order by created_at desc, user_id desc`).map((r) => r.user_id),
    });

    // a quiet snapshot: every size at its bounds, and sizes that change from page to page
    const quiet = await expected();
    const sizeRuns = fc.array(fc.constantFrom(0, 1, 2, 3, 7, 499, 500, 501, 100_000), {
      minLength: 1,
      maxLength: 4,
    });
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...Object.keys(lists) as Array<keyof typeof lists>),
        sizeRuns,
        async (name, sizes) => {
          const seen = await pass(name === "bans" ? other : admin, lists[name]!, sizes);
          assert.deepEqual(seen, quiet[name as keyof typeof quiet], `${name} ${sizes}`);
        },
      ),
      { numRuns: 40 },
    );

    // page tokens: the same token twice gives the same page; one altered, of another request
    // or another method is INVALID_ARGUMENT naming page_token
    const firstPage = await admin.call("ListModerationActions", { page_size: 3 });
    const again = [
      await admin.call("ListModerationActions", {
        page_size: 3,
        page_token: firstPage.next_page_token,
      }),
      await other.call("ListModerationActions", {
        page_size: 3,
        page_token: firstPage.next_page_token,
      }),
    ];
    assert.deepEqual(again[0]!.actions, again[1]!.actions);
    const token: string = firstPage.next_page_token;
    const tampered = token.slice(0, -2) + (token.endsWith("A") ? "BB" : "AA");
    for (
      const [method, request] of [
        ["ListModerationActions", { page_token: tampered }],
        ["ListModerationActions", { moderator_id: "mod", page_token: token }],
        ["ListChats", { page_token: token }],
        ["ListBans", { page_token: token }],
      ] as const
    ) {
      const refused = await failure(admin.call(method, request));
      assert.equal(refused.code, Status.INVALID_ARGUMENT, `${method} ${JSON.stringify(request)}`);
      assert.match(refused.details, /^page_token: /);
    }

    // traffic on both instances while passes run
    const sockets = await Promise.all(
      chats.map((chat, index) => joinChat(cluster, `c${index}`, chat.id, index % 2)),
    );
    const vendor = await joinChat(cluster, "acme", chats[2]!.id, 1);
    const watched = follow(other.watch({}));
    await watched.subscribed;
    const sentIds: string[] = [];
    const deletedIds: string[] = [];
    let traffic = true;
    const work = (async () => {
      let n = 0;
      while (traffic && n < 300) {
        n++;
        const socket = sockets[n % sockets.length]!;
        const sent = await sendText(socket, "acme", `lamp busy ${n}`);
        sentIds.push(sent.id);
        if (n % 3 === 0) {
          await socket.request({ action: "delete_message", message_id: sent.id });
          deletedIds.push(sent.id);
        }
        if (n % 4 === 0) {
          await vendor.request({ action: "read_up_to", chat_id: chats[2]!.id, seq: sent.seq });
        }
        if (n % 5 === 0) {
          await (n % 2 ? admin : other).call("BanUser", {
            user_id: `n${n}`,
            ...by,
            duration_seconds: n % 3 * 60,
          });
        }
        if (n % 6 === 0) {
          // replaces a ban in force, which keeps its place in ListBans
          await admin.call("BanUser", { user_id: `b${n % 9}`, ...by, duration_seconds: 0 });
        }
        if (n % 7 === 0) {
          await admin.call("CreateChat", { user_id: `x${n}`, vendor_id: "acme" });
        }
      }
    })();
    // the vendor answers in chat 2 from the other instance at the same time
    const answers = (async () => {
      let n = 0;
      while (traffic && n < 300) {
        const sent = await sendText(vendor, "c2", `lamp answer ${++n}`);
        sentIds.push(sent.id);
      }
    })();
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...Object.keys(lists) as Array<keyof typeof lists>),
          fc.array(fc.constantFrom(1, 2, 3, 5), { minLength: 1, maxLength: 3 }),
          async (name, sizes) => {
            const before = (await expected())[name as keyof typeof quiet];
            const seen = await pass(name === "bans" ? other : admin, lists[name]!, sizes);
            assert.equal(new Set(seen).size, seen.length, `${name}: a row repeated`);
            const missing = before.filter((key: string) => !seen.includes(key));
            assert.deepEqual(missing, [], `${name}: rows skipped`);
          },
        ),
        { numRuns: 20 },
      );
    } finally {
      traffic = false;
      await work;
      await answers;
    }

    // WatchEvents: every message sent and every deletion once, each chat's in order
    await watched.take(sentIds.length + deletedIds.length);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const heard = (type: string) =>
      watched.events.filter((event) => event.type === type).map((event) => event.message_id);
    assert.deepEqual(heard("CHAT_EVENT_TYPE_CHAT_MESSAGE").sort(), [...sentIds].sort());
    assert.deepEqual(heard("CHAT_EVENT_TYPE_MESSAGE_DELETED").sort(), [...deletedIds].sort());
    for (const chat of chats) {
      const seqs = watched.events
        .filter((event) =>
          event.chat_id === chat.id && event.type === "CHAT_EVENT_TYPE_CHAT_MESSAGE"
        )
        .map((event) => event.seq);
      // the customer and the vendor send at once from two instances: seq 25 from one can reach
      // NATS before seq 24 from the other, and was streamed before it
      const behind = seqs.flatMap((seq, index) =>
        index > 0 && seq < seqs[index - 1] ? [[seqs[index - 1], seq]] : []
      );
      assert.deepEqual(behind, [], `chat ${chat.id}: a later seq streamed before an earlier one`);
    }

    // counts against the database once quiet
    const [{ count }] = await sql<[{ count: number }]>`select count(*)::int as count from messages`;
    const stats = await other.call("GetStats", {});
    assert.equal(stats.messages, count);
    assert.equal(stats.chats, (await expected()).chats.length);
    for (const chat of chats) {
      const [{ n }] = await sql<[{ n: number }]>`
        select count(*)::int as n from messages where chat_id = ${chat.id}`;
      assert.equal((await admin.call("GetChat", { chat_id: chat.id })).message_count, n);
    }
  } finally {
    await sql.end();
  }
});
