import assert from "node:assert/strict";
import { type CryptoKey, exportJWK, generateKeyPair, SignJWT } from "jose";
import { hs256Key } from "../auth/secret.ts";
import { signDevToken } from "../auth/sign.ts";
import { clockAhead } from "./support/clock.ts";
import { startCluster, type TestCluster } from "./support/service.ts";
import { joinAllChats, joinChat, sendText, stillServes, unknownId } from "./support/steps.ts";
import { within } from "./support/wait.ts";
import { TestSocket } from "./support/ws_client.ts";

/** Both endpoints of a chat, for tests that must hold on each. */
function endpoints(cluster: TestCluster, chatId: string) {
  return [
    `${cluster.main.wsUrl}/v1/ws/chat/${chatId}/`,
    `${cluster.main.wsUrl}/v1/ws/chats/`,
  ];
}

async function closeCodeOf(url: string, options: { token?: string; header?: boolean }) {
  await using socket = await TestSocket.open(url, options);
  const closed = await within(socket.closed, 5_000, `the close of ${url}`);
  assert.equal(
    socket.frames.length,
    0,
    `frames before the close: ${JSON.stringify(socket.frames)}`,
  );
  return closed.code;
}

Deno.test("a socket without a token is closed with 4401 on both endpoints", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  for (const url of endpoints(cluster, chat.id)) {
    assert.equal(await closeCodeOf(url, {}), 4401, url);
  }
});

Deno.test("a garbage token is closed with 4401, in the query and in the header", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  for (const url of endpoints(cluster, chat.id)) {
    assert.equal(await closeCodeOf(url, { token: "not.a.jwt" }), 4401, url);
    assert.equal(await closeCodeOf(url, { token: "garbage", header: true }), 4401, url);
  }
});

Deno.test("an expired token is closed with 4401", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  const token = await signDevToken(cluster.secret, "cust-1", { ttlSeconds: -120 });
  for (const url of endpoints(cluster, chat.id)) {
    assert.equal(await closeCodeOf(url, { token }), 4401, url);
  }
});

Deno.test("a token signed with another secret is closed with 4401", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  const token = await signDevToken(crypto.randomUUID() + crypto.randomUUID(), "cust-1");
  for (const url of endpoints(cluster, chat.id)) {
    assert.equal(await closeCodeOf(url, { token }), 4401, url);
  }
});

Deno.test("an unsigned token (alg none) and one without exp are closed with 4401", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  const encode = (value: unknown) =>
    btoa(JSON.stringify(value)).replaceAll("=", "").replaceAll("+", "-").replaceAll("/", "_");
  const exp = Math.floor(Date.now() / 1000) + 3600;
  const unsigned = `${encode({ alg: "none", typ: "JWT" })}.${encode({ user_id: "cust-1", exp })}.`;
  const withoutExp = await new SignJWT({ user_id: "cust-1" })
    .setProtectedHeader({ alg: "HS256" })
    .sign(hs256Key(cluster.secret));
  for (const url of endpoints(cluster, chat.id)) {
    assert.equal(await closeCodeOf(url, { token: unsigned }), 4401, url);
    assert.equal(await closeCodeOf(url, { token: withoutExp }), 4401, url);
  }
});

Deno.test("a token naming a user id with a NUL or a lone surrogate is closed with 4401, not 1011", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  for (const userId of ["cust-1\u0000", "\ud800"]) {
    const token = await cluster.token(userId);
    for (const url of endpoints(cluster, chat.id)) {
      assert.equal(await closeCodeOf(url, { token }), 4401, `${JSON.stringify(userId)} ${url}`);
    }
  }
});

Deno.test("a socket whose token expires while open is closed with 4401 on both endpoints", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  const token = await cluster.token("cust-1", 2);
  await using single = await TestSocket.open(endpoints(cluster, chat.id)[0]!, { token });
  await using all = await TestSocket.open(endpoints(cluster, chat.id)[1]!, { token });
  await single.nextOfType("unread_messages");
  await all.nextOfType("chats");
  // `exp` is 2 s away; the token is good for the 5 s of clock tolerance after it
  const [singleClosed, allClosed] = await within(
    Promise.all([single.closed, all.closed]),
    10_000,
    "the token to expire",
  );
  assert.equal(singleClosed.code, 4401);
  assert.equal(allClosed.code, 4401);
});

Deno.test("a token the handshake takes within the clock tolerance keeps its socket until exp plus the tolerance", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  // a client whose clock is a little behind ours still holds this token as good: closed at once
  // before it was taken in, the client would drop its token source as refused
  const token = await cluster.token("cust-1", -2);
  await using single = await TestSocket.open(endpoints(cluster, chat.id)[0]!, { token });
  await using all = await TestSocket.open(endpoints(cluster, chat.id)[1]!, { token });
  await single.nextOfType("unread_messages");
  await all.nextOfType("chats");
  const [singleClosed, allClosed] = await within(
    Promise.all([single.closed, all.closed]),
    6_000,
    "the tolerance to run out",
  );
  assert.equal(singleClosed.code, 4401);
  assert.equal(allClosed.code, 4401);
});

Deno.test("a numeric user_id claim and a bare sub claim both name the user", async () => {
  await using cluster = await startCluster();
  const numeric = await cluster.main.service.chat.createChat("1001", "2002");
  const bySub = await cluster.main.service.chat.createChat("cust-sub", "2002");
  const exp = Math.floor(Date.now() / 1000) + 3600;
  const key = hs256Key(cluster.secret);
  const numericToken = await new SignJWT({ user_id: 1001, exp })
    .setProtectedHeader({ alg: "HS256" })
    .sign(key);
  const subToken = await new SignJWT({ sub: "cust-sub", exp })
    .setProtectedHeader({ alg: "HS256" })
    .sign(key);

  await using customer = await TestSocket.open(endpoints(cluster, numeric.id)[0]!, {
    token: numericToken,
  });
  assert.equal((await customer.nextOfType("latest_chat")).chat_id, numeric.id);
  await customer.nextOfType("unread_messages");
  const sent = await sendText(customer, "2002", "from a numeric id");
  assert.equal(sent.sender_id, "1001");

  await using other = await TestSocket.open(endpoints(cluster, bySub.id)[0]!, {
    token: subToken,
  });
  assert.equal((await other.nextOfType("latest_chat")).chat_id, bySub.id);
});

Deno.test("a JWKS endpoint that cannot be reached closes sockets with 1013 and answers media 503, not as a bad token", async () => {
  const { privateKey } = await generateKeyPair("RS256");
  // a port nothing listens on any more
  const stopped = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response(),
  );
  await stopped.shutdown();
  await using cluster = await startCluster({
    nats: false,
    env: { JWT_SECRET: "", JWT_JWKS_URL: `http://127.0.0.1:${stopped.addr.port}/jwks.json` },
  });
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  const token = await new SignJWT({ user_id: "cust-1", exp: Math.floor(Date.now() / 1000) + 3600 })
    .setProtectedHeader({ alg: "RS256", kid: "k1" })
    .sign(privateKey);
  for (const url of endpoints(cluster, chat.id)) {
    assert.equal(await closeCodeOf(url, { token }), 1013, url);
  }
  const media = await fetch(`${cluster.main.httpUrl}/v1/media/${crypto.randomUUID()}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(media.status, 503);
  assert.equal(media.headers.get("retry-after"), "1");
  assert.equal((await media.json()).code, "unavailable");
});

Deno.test("a token issued just after the JWKS was fetched, of a key published since, closes its socket with 1013, not 4401, and is taken once the set is fetched again", async () => {
  const issued = await generateKeyPair("RS256", { extractable: true });
  const published = await generateKeyPair("RS256", { extractable: true });
  const jwkOf = async (key: CryptoKey, kid: string) => ({
    ...(await exportJWK(key)),
    kid,
    alg: "RS256",
    use: "sig",
  });
  let keys = [await jwkOf(issued.publicKey, "k1")];
  const keyServer = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => Response.json({ keys }),
  );
  await using cluster = await startCluster({
    nats: false,
    env: { JWT_SECRET: "", JWT_JWKS_URL: `http://127.0.0.1:${keyServer.addr.port}/jwks.json` },
  });
  try {
    const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
    const url = `${cluster.main.wsUrl}/v1/ws/chat/${chat.id}/`;
    const tokenOf = (key: CryptoKey, kid: string) =>
      new SignJWT({ user_id: "cust-1", exp: Math.floor(Date.now() / 1000) + 3600 })
        .setProtectedHeader({ alg: "RS256", kid })
        .setIssuedAt()
        .sign(key);
    await using held = await TestSocket.open(url, {
      token: await tokenOf(issued.privateKey, "k1"),
    });
    await held.nextOfType("unread_messages");

    keys = [...keys, await jwkOf(published.publicKey, "k2")];
    const token = await tokenOf(published.privateKey, "k2");
    for (const endpoint of endpoints(cluster, chat.id)) {
      assert.equal(await closeCodeOf(endpoint, { token }), 1013, endpoint);
    }
    using _later = clockAhead(31_000);
    await using taken = await TestSocket.open(url, { token });
    await taken.nextOfType("unread_messages");
  } finally {
    await keyServer.shutdown();
  }
});

Deno.test("an unknown chat id and a chat id that is not a uuid are closed with 4403", async () => {
  await using cluster = await startCluster();
  const token = await cluster.token("cust-1");
  for (const chatId of [unknownId(), "not-a-uuid", "1", "%27%3B%20drop%20table%20chats%3B--"]) {
    const url = `${cluster.main.wsUrl}/v1/ws/chat/${chatId}/`;
    assert.equal(await closeCodeOf(url, { token }), 4403, chatId);
  }
});

Deno.test("a user who is not a participant is closed with 4403 like an unknown chat", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await cluster.main.service.chat.createChat("stranger", "vend-2");
  const url = endpoints(cluster, chat.id)[0]!;
  assert.equal(await closeCodeOf(url, { token: await cluster.token("stranger") }), 4403);
  assert.equal(await closeCodeOf(url, { token: await cluster.token("vend-2") }), 4403);
});

Deno.test("a banned user is closed with 4403 on both endpoints", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await cluster.main.service.chat.banUser("cust-1", 0, { moderator_id: "mod", reason: "spam" });
  const token = await cluster.token("cust-1");
  for (const url of endpoints(cluster, chat.id)) {
    assert.equal(await closeCodeOf(url, { token }), 4403, url);
  }
});

Deno.test("a ban closes the user's open sockets with 4403 on both endpoints, and no one else's", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using single = await joinChat(cluster, "cust-1", chat.id);
  await using all = await joinAllChats(cluster, "cust-1");
  await using vendor = await joinChat(cluster, "vend-1", chat.id);

  await cluster.main.service.chat.banUser("cust-1", 3600, { moderator_id: "mod", reason: "spam" });
  const [singleClosed, allClosed] = await within(
    Promise.all([single.closed, all.closed]),
    5_000,
    "the banned user's sockets to close",
  );
  assert.equal(singleClosed.code, 4403);
  assert.equal(allClosed.code, 4403);
  await stillServes(vendor);
});

Deno.test("an operator disconnect closes every socket of the user with 4408, and no one else's", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using single = await joinChat(cluster, "cust-1", chat.id);
  await using all = await joinAllChats(cluster, "cust-1");
  await using vendor = await joinChat(cluster, "vend-1", chat.id);

  await cluster.main.service.chat.disconnectUser("cust-1", { moderator_id: "mod", reason: "r" });
  const [singleClosed, allClosed] = await within(
    Promise.all([single.closed, all.closed]),
    5_000,
    "the user's sockets to close",
  );
  assert.equal(singleClosed.code, 4408);
  assert.equal(allClosed.code, 4408);
  await stillServes(vendor);

  // not banned: the user may come back at once
  await using back = await joinChat(cluster, "cust-1", chat.id);
  await stillServes(back);
});
