import assert from "node:assert/strict";
import { createChatClient } from "../client/mod.ts";
import postgres from "postgres";
import { freshDatabase } from "../tests/support/database.ts";
import { runDevTask } from "../tests/support/dev_task.ts";
import { startCluster } from "../tests/support/service.ts";
import { within } from "../tests/support/wait.ts";
import { DEMO, seedDemo } from "./seed.ts";

Deno.test("seedDemo() makes vendors with members, chats and a conversation, and adds nothing when run again", async () => {
  await using cluster = await startCluster({ nats: false });
  const service = cluster.main.service.chat;
  const first = await seedDemo(service);
  const again = await seedDemo(service);
  assert.deepEqual(again.chats.map((chat) => chat.id), first.chats.map((chat) => chat.id));
  assert.deepEqual(
    first.chats.map((chat) => [chat.user_id, chat.vendor_id]),
    DEMO.chats.map(([customer, vendor]) => [customer, vendor]),
  );
  assert.ok(first.users.includes("acme-agent") && first.users.includes("bob"));

  const opening = first.chats[0]!;
  const history = await service.history(opening, { limit: 10 });
  assert.deepEqual(
    history.items.map((message) => [message.sender_id, message.content]),
    DEMO.conversation.map(([sender, content]) => [sender, content]),
  );
  // a member acts for the vendor: acme's agent sees both of acme's chats
  const { chats } = await service.joinAllChats("acme-agent");
  assert.deepEqual(
    chats.map((membership) => [membership.chat.vendor_id, membership.side]),
    [["acme-store", "vendor"], ["acme-store", "vendor"]],
  );
});

Deno.test("`deno task seed` seeds the configured database and prints a working page link per user", async () => {
  await using cluster = await startCluster({ nats: false });
  const { code, stdout, stderr } = await within(
    new Deno.Command(Deno.execPath(), {
      args: ["task", "--quiet", "seed"],
      cwd: new URL("../", import.meta.url),
      env: { DATABASE_URL: cluster.databaseUrl, JWT_SECRET: cluster.secret, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output(),
    60_000,
    "deno task seed",
  );
  const out = new TextDecoder().decode(stdout);
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  assert.match(out, /^seeded 3 chats:/m);
  const links = new Map(
    [...out.matchAll(/^ {2}(\S+) +http:\/\/localhost:8000\/#token=(\S+)$/gm)].map((match) => [
      match[1]!,
      match[2]!,
    ]),
  );
  assert.deepEqual([...links.keys()].sort(), [
    "acme-agent",
    "acme-owner",
    "acme-store",
    "alice",
    "bike-agent",
    "bike-shop",
    "bob",
  ]);
  // alice's token opens her chats on the service
  await using alice = createChatClient({
    url: cluster.main.httpUrl,
    token: links.get("alice")!,
  });
  const { promise, resolve } = Promise.withResolvers<number>();
  alice.on("chats", (frame) => resolve(frame.chats.length));
  assert.equal(await within(promise, 5_000, "alice's chats"), 2);
});

Deno.test("`deno task seed` takes JWT_SECRET and PORT set empty as unset, as `deno task dev` does", async () => {
  await using cluster = await startCluster({ nats: false });
  const cwd = await Deno.makeTempDir();
  try {
    // the secret `deno task dev` generated, which the cluster also verifies with
    await Deno.mkdir(`${cwd}/.dev`);
    await Deno.writeTextFile(
      `${cwd}/.dev/secrets.json`,
      JSON.stringify({ JWT_SECRET: cluster.secret, GRPC_ADMIN_TOKEN: "unused-admin-token-0" }),
    );
    // as a shell that sourced a copy of .env.example has them
    const { code, stdout, stderr } = await runDevTask("seed", {
      cwd,
      env: {
        DATABASE_URL: cluster.databaseUrl,
        JWT_SECRET: "",
        PORT: "",
      },
    });
    assert.equal(code, 0, stderr);
    const token = /^ {2}alice +http:\/\/localhost:8000\/#token=(\S+)$/m.exec(stdout)?.[1];
    assert.ok(token, stdout);
    await using alice = createChatClient({ url: cluster.main.httpUrl, token });
    const { promise, resolve } = Promise.withResolvers<number>();
    alice.on("chats", (frame) => resolve(frame.chats.length));
    assert.equal(await within(promise, 5_000, "alice's chats"), 2);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("`deno task seed` whose database connection is lost while seeding says so in one line and exits 1", async () => {
  await using database = await freshDatabase();
  // the first demo vendor member ends the connection that adds it, as a restart would
  const sql = postgres(database.url, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(`
      create function end_own_connection() returns trigger language plpgsql as $$
      begin perform pg_terminate_backend(pg_backend_pid()); return new; end $$;
      create trigger end_own_connection before insert on vendor_members
        for each row execute function end_own_connection();
    `);
  } finally {
    await sql.end();
  }
  const cwd = await Deno.makeTempDir();
  try {
    const { code, stdout, stderr } = await runDevTask("seed", {
      cwd,
      env: { DATABASE_URL: database.url, JWT_SECRET: "seed-test-secret-0123456789abcdef" },
    });
    assert.equal(code, 1, `${stdout}\n${stderr}`);
    assert.doesNotMatch(stdout, /seeded/);
    assert.match(stderr, /^could not seed: the database is unavailable[^\n]*$/);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("`deno task seed` signs its links for the JWT_ISSUER and JWT_AUDIENCE the service checks", async () => {
  const checked = { JWT_ISSUER: "https://auth.example", JWT_AUDIENCE: "chat" };
  await using cluster = await startCluster({ nats: false, env: checked });
  const { code, stdout, stderr } = await within(
    new Deno.Command(Deno.execPath(), {
      args: ["task", "--quiet", "seed"],
      cwd: new URL("../", import.meta.url),
      env: {
        DATABASE_URL: cluster.databaseUrl,
        JWT_SECRET: cluster.secret,
        NO_COLOR: "1",
        ...checked,
      },
      stdout: "piped",
      stderr: "piped",
    }).output(),
    60_000,
    "deno task seed",
  );
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  const token = /^ {2}alice +http:\/\/localhost:8000\/#token=(\S+)$/m.exec(
    new TextDecoder().decode(stdout),
  )?.[1];
  assert.ok(token, "no link for alice");
  // taken by the service: a token without iss and aud would be closed with 4401
  await using alice = createChatClient({ url: cluster.main.httpUrl, token });
  const { promise, resolve } = Promise.withResolvers<number>();
  alice.on("chats", (frame) => resolve(frame.chats.length));
  assert.equal(await within(promise, 5_000, "alice's chats"), 2);
});
