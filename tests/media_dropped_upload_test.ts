/**
 * Uploads whose client goes away before its body is whole (an app killed, a tab closed, a proxy
 * cutting the body): the client's doing, answered 400 if anyone still listens, and never logged
 * as the server's failure.
 */
import assert from "node:assert/strict";
import { configureLogging } from "../observability/log.ts";
import { fixture, rawUpload, untilOpen } from "./support/media.ts";
import { startCluster, type TestCluster } from "./support/service.ts";

/** Lines the service logs at ERROR level while the test runs. */
async function errorLines() {
  const lines: string[] = [];
  const decoder = new TextDecoder();
  const logging = await configureLogging("warning", {
    write: (bytes) => lines.push(decoder.decode(bytes)),
  });
  return {
    get errors() {
      return lines.filter((line) => line.includes('"level":"ERROR"'));
    },
    [Symbol.asyncDispose]: () => logging[Symbol.asyncDispose](),
  };
}

/** An upload that declares 100 bytes more than it sends, once the server is reading it. */
async function uploadCutShort(cluster: TestCluster) {
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  const png = await fixture("image.png");
  const upload = await rawUpload(cluster, chat.id, png.length + 100);
  await upload.conn.write(png);
  await untilOpen(cluster, "upload", 1);
  return upload;
}

Deno.test("an upload whose client stops sending before its Content-Length is answered 400 invalid_payload, with no error logged", async () => {
  await using logged = await errorLines();
  await using cluster = await startCluster({ nats: false });
  using upload = await uploadCutShort(cluster);
  await upload.conn.closeWrite(); // half-closed: the client still reads the answer

  const answer = await upload.answer();
  assert.match(answer, /^HTTP\/1\.1 400 /);
  assert.match(answer, /"code":"invalid_payload"/);
  await untilOpen(cluster, "upload", 0);
  assert.deepEqual(logged.errors, []);
});

Deno.test("an upload whose client closes its connection mid-body gives its place back, with no error logged", async () => {
  await using logged = await errorLines();
  await using cluster = await startCluster({ nats: false });
  using upload = await uploadCutShort(cluster);
  upload.conn.close(); // the client goes away

  // the place is given back in the same step as the failure is reported
  await untilOpen(cluster, "upload", 0);
  assert.deepEqual(logged.errors, []);
});
