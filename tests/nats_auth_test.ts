import assert from "node:assert/strict";
import { startNatsServer } from "./support/nats_server.ts";
import { startCluster } from "./support/service.ts";
import { joinChat, messageWithSeq, sendText } from "./support/steps.ts";

/** `url` with `userinfo` (already URL-encoded) put before its host. */
const withCredentials = (url: string, userinfo: string) =>
  url.replace("nats://", `nats://${userinfo}@`);

Deno.test("instances reach a NATS that wants a user and password given in NATS_URL, and fan out over it", async () => {
  await using nats = await startNatsServer(["--user", "chat", "--pass", "p@ss:word"]);
  await using cluster = await startCluster({ instances: 0 });
  const url = withCredentials(nats.url, "chat:p%40ss%3Aword");
  await cluster.startInstance({ NATS_URL: url });
  await cluster.startInstance({ NATS_URL: url });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  await using alice = await joinChat(cluster, "alice", chat.id, 0);
  await using acme = await joinChat(cluster, "acme", chat.id, 1);
  const sent = await sendText(alice, "acme", "over an authenticated NATS");
  assert.equal((await messageWithSeq(acme, 1)).message.id, sent.id);
});

Deno.test("an instance keeps media in a NATS that wants a token given in NATS_URL", async () => {
  const storeDir = await Deno.makeTempDir();
  try {
    await using nats = await startNatsServer(["--auth", "s3cr3t-token", "-js", "-sd", storeDir]);
    await using cluster = await startCluster({ instances: 0 });
    const instance = await cluster.startInstance({
      NATS_URL: withCredentials(nats.url, "s3cr3t-token"),
      MEDIA_BACKEND: "nats",
    });
    const response = await fetch(`${instance.httpUrl}/readyz`);
    assert.equal(response.status, 200, JSON.stringify(await response.json()));
  } finally {
    await Deno.remove(storeDir, { recursive: true });
  }
});
