import assert from "node:assert/strict";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import { clockAhead } from "./support/clock.ts";
import { readyz } from "./support/readyz.ts";
import { startCluster, type TestCluster } from "./support/service.ts";
import { within } from "./support/wait.ts";
import { TestSocket } from "./support/ws_client.ts";

/** Past the pause after a failed fetch, during which the JWKS endpoint is not asked again. */
const PAST_RETRY_MS = 60_000;
/** Past jose's cache age (10 minutes), after which a token check would refetch the set. */
const PAST_CACHE_AGE_MS = 11 * 60_000;

async function signingKey(): Promise<{ jwk: JWK; token(userId: string): Promise<string> }> {
  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
  return {
    jwk: { ...(await exportJWK(publicKey)), kid: "k1", alg: "RS256", use: "sig" },
    token: (userId: string) =>
      new SignJWT({ user_id: userId, exp: Math.floor(Date.now() / 1000) + 3600 })
        .setProtectedHeader({ alg: "RS256", kid: "k1" })
        .sign(privateKey),
  };
}

/** A JWKS endpoint on 127.0.0.1 serving `keys`, calling `onRequest` for each request. */
function serveKeys(keys: JWK[], options: { port?: number; onRequest?: () => void } = {}) {
  return Deno.serve({ hostname: "127.0.0.1", port: options.port ?? 0, onListen() {} }, () => {
    options.onRequest?.();
    return Response.json({ keys });
  });
}

function jwksEnv(port: number): Record<string, string> {
  return { JWT_SECRET: "", JWT_JWKS_URL: `http://127.0.0.1:${port}/jwks.json` };
}

/** Whether a socket with `token` gets served (its token was checked and accepted). */
async function served(cluster: TestCluster, chatId: string, token: string): Promise<void> {
  await using socket = await TestSocket.open(`${cluster.main.wsUrl}/v1/ws/chat/${chatId}/`, {
    token,
  });
  await socket.nextOfType("unread_messages");
}

Deno.test("an instance with JWT_JWKS_URL is not ready on /readyz and gRPC health until it holds a key set, then stays ready when the endpoint goes down", async () => {
  const key = await signingKey();
  // a port nothing listens on any more: the endpoint is down from the start
  const stopped = serveKeys([]);
  const { port } = stopped.addr;
  await stopped.shutdown();
  await using cluster = await startCluster({ nats: false, grpc: true, env: jwksEnv(port) });
  const admin = await cluster.admin(0, { token: null });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");

  assert.deepEqual(await readyz(cluster.main.httpUrl), {
    status: 503,
    body: { ready: false, checks: { database: true, jwks: false }, reason: "not answering: jwks" },
  });
  assert.equal(await admin.health(), "NOT_SERVING");
  assert.equal(await admin.health("chat.admin.v1.ChatAdmin"), "NOT_SERVING");

  let requests = 0;
  await using keys = serveKeys([key.jwk], { port, onRequest: () => requests++ });
  // within 10 s of the failed fetch, polling /readyz does not ask the endpoint again
  assert.equal((await readyz(cluster.main.httpUrl)).status, 503);
  assert.equal((await readyz(cluster.main.httpUrl)).status, 503);
  assert.equal(requests, 0);

  using _retried = clockAhead(PAST_RETRY_MS);
  assert.deepEqual(await readyz(cluster.main.httpUrl), {
    status: 200,
    body: { ready: true, checks: { database: true, jwks: true } },
  });
  assert.equal(requests, 1);
  assert.equal(await admin.health(), "SERVING");
  await served(cluster, chat.id, await key.token("alice"));

  // an outage of the endpoint, even past the set's cache age, keeps the instance in
  await keys.shutdown();
  using _later = clockAhead(PAST_CACHE_AGE_MS);
  assert.deepEqual(await readyz(cluster.main.httpUrl), {
    status: 200,
    body: { ready: true, checks: { database: true, jwks: true } },
  });
  assert.equal(await admin.health(), "SERVING");
  await served(cluster, chat.id, await key.token("alice"));
  assert.equal(requests, 1);
});

Deno.test("an instance with JWT_JWKS_URL fetches the key set at start, before any token or /readyz asks for it", async () => {
  const key = await signingKey();
  const { promise: fetched, resolve } = Promise.withResolvers<void>();
  await using keys = serveKeys([key.jwk], { onRequest: resolve });
  await using cluster = await startCluster({ nats: false, env: jwksEnv(keys.addr.port) });

  await within(fetched, 5_000, "the key set to be fetched at start");
  assert.deepEqual(await readyz(cluster.main.httpUrl), {
    status: 200,
    body: { ready: true, checks: { database: true, jwks: true } },
  });
});
