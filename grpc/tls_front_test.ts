import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import tls from "node:tls";
import { startEchoServer } from "../tests/support/echo_server.ts";
import { createCertificate } from "../tests/support/tls_certificates.ts";
import { within } from "../tests/support/wait.ts";
import { startTlsFront, TLS_HANDSHAKE_TIMEOUT_MS } from "./tls_front.ts";

/** The bytes read until the peer ends the connection (null), or the error that ended it. */
async function untilEnded(conn: Deno.Conn): Promise<string> {
  const buffer = new Uint8Array(1024);
  try {
    while ((await conn.read(buffer)) !== null) {
      // whatever the front sends before it ends the connection
    }
    return "ended";
  } catch (error) {
    return `reset: ${error}`;
  }
}

/**
 * A TLS client of the front trusting `ca` (node's TLS, as a gRPC client's: Deno's refuses a
 * self-signed certificate), whose `echo` writes text and reads as much back.
 */
async function secureClient(port: number, ca: string) {
  const socket = tls.connect({ host: "127.0.0.1", port, ca, servername: "localhost" });
  await new Promise<void>((resolve, reject) => {
    socket.once("secureConnect", resolve);
    socket.once("error", reject);
  });
  const received: Buffer[] = [];
  let wake = () => {};
  socket.on("data", (chunk: Buffer) => {
    received.push(chunk);
    wake();
  });
  return {
    async echo(text: string): Promise<string> {
      received.length = 0;
      socket.write(text);
      await within(
        new Promise<void>((resolve) => {
          wake = () => Buffer.concat(received).length >= text.length && resolve();
          wake();
        }),
        5_000,
        `the echo of ${text}`,
      );
      return Buffer.concat(received).toString();
    },
    async close() {
      const closed = new Promise((resolve) => socket.once("close", resolve));
      socket.destroy();
      await closed;
    },
  };
}

Deno.test("the TLS front ends a connection whose TLS handshake does not finish in time, so a silent client cannot hold a descriptor for good", async () => {
  const { cert, key } = await createCertificate();
  const upstream = startEchoServer();
  const front = startTlsFront({
    host: "127.0.0.1",
    port: 0,
    cert,
    key,
    upstreamPort: upstream.port,
  });
  const secure = await secureClient(front.port, cert);
  assert.equal(await secure.echo("before"), "before");
  const silent = await Deno.connect({ hostname: "127.0.0.1", port: front.port });
  // a client that stalls in the handshake: its first bytes, then nothing
  const stalled = await Deno.connect({ hostname: "127.0.0.1", port: front.port });
  await stalled.write(new Uint8Array([0x16, 0x03, 0x01, 0x00, 0x40]));
  try {
    const started = Date.now();
    for (const conn of [silent, stalled]) {
      await within(untilEnded(conn), TLS_HANDSHAKE_TIMEOUT_MS + 5_000, "the front to end it");
    }
    assert.ok(Date.now() - started >= TLS_HANDSHAKE_TIMEOUT_MS - 100, "not before its time");
    // a client whose handshake finished keeps its connection past the deadline
    assert.equal(await secure.echo("after"), "after");
  } finally {
    for (const conn of [silent, stalled]) conn.close();
    await secure.close();
    await front.close();
    await upstream.close();
  }
});

Deno.test("a renewed certificate is served to the connections that come after it, and those open before keep theirs", async () => {
  const first = await createCertificate();
  const renewed = await createCertificate();
  const upstream = startEchoServer();
  const front = startTlsFront({
    host: "127.0.0.1",
    port: 0,
    ...first,
    upstreamPort: upstream.port,
  });
  const before = await secureClient(front.port, first.cert);
  try {
    front.renew(renewed);
    const after = await secureClient(front.port, renewed.cert);
    assert.equal(await after.echo("renewed"), "renewed");
    await after.close();
    await assert.rejects(secureClient(front.port, first.cert), /self-signed|self signed/);
    assert.equal(await before.echo("still here"), "still here");
    // a pair Deno cannot serve is refused, and the renewed one stays
    assert.throws(() => front.renew({ cert: renewed.cert, key: "no key" }));
    const again = await secureClient(front.port, renewed.cert);
    assert.equal(await again.echo("again"), "again");
    await again.close();
  } finally {
    await before.close();
    await front.close();
    await upstream.close();
  }
});
