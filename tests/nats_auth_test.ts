import assert from "node:assert/strict";
import { chatWithImage, fetchMedia, fixture } from "./support/media.ts";
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

Deno.test("instances fan out and keep media in a NATS that allows the user only the subjects docs/security.md names", async () => {
  // what docs/security.md tells operators to allow, for the default prefix and bucket
  const publish = ["chat.>", "$JS.API.>", "$O.chat_media.>"];
  const subscribe = ["chat.>", "_INBOX.>"];
  const security = await Deno.readTextFile(new URL("../docs/security.md", import.meta.url));
  for (const subject of ["NATS_SUBJECT_PREFIX.>", "$JS.API.>", "$O.<MEDIA_NATS_BUCKET>.>"]) {
    assert.ok(security.includes(`\`${subject}\``), `docs/security.md names ${subject}`);
  }
  assert.ok(security.includes("`_INBOX.>`"), "docs/security.md names _INBOX.>");
  const dir = await Deno.makeTempDir();
  try {
    const config = `${dir}/nats.conf`;
    await Deno.writeTextFile(
      config,
      `jetstream { store_dir: ${JSON.stringify(`${dir}/js`)} }\n` +
        `authorization { users = [ { user: chat, password: pw, permissions: { ` +
        `publish: ${JSON.stringify(publish)}, subscribe: ${JSON.stringify(subscribe)} } } ] }\n`,
    );
    await using nats = await startNatsServer(["-c", config]);
    await using cluster = await startCluster({ instances: 0 });
    const env = {
      NATS_URL: withCredentials(nats.url, "chat:pw"),
      NATS_SUBJECT_PREFIX: "chat",
      MEDIA_BACKEND: "nats",
    };
    await cluster.startInstance(env);
    await cluster.startInstance(env);
    const { chat, mediaUrl } = await chatWithImage(cluster);
    const { response, body } = await fetchMedia(cluster, "acme", mediaUrl);
    assert.equal(response.status, 200);
    assert.deepEqual(body, await fixture("image.png"));
    await using alice = await joinChat(cluster, "alice", chat.id, 0);
    await using acme = await joinChat(cluster, "acme", chat.id, 1);
    const sent = await sendText(alice, "acme", "over a NATS with subject permissions");
    assert.equal((await messageWithSeq(acme, 2)).message.id, sent.id);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
