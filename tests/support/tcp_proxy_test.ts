import assert from "node:assert/strict";
import { startTcpProxy } from "./tcp_proxy.ts";
import { startEchoServer } from "./echo_server.ts";
import { within } from "./wait.ts";

/** The next `length` bytes the peer sends, as text. */
function readExactly(conn: Deno.Conn, length: number): Promise<string> {
  const reading = async () => {
    const bytes = new Uint8Array(length);
    let read = 0;
    while (read < length) {
      const count = await conn.read(bytes.subarray(read));
      if (count === null) throw new Error(`ended after ${read} of ${length} bytes`);
      read += count;
    }
    return new TextDecoder().decode(bytes);
  };
  return within(reading(), 2_000, `${length} bytes`);
}

/** Everything read until the peer ends the connection. */
async function readToEnd(conn: Deno.Conn): Promise<string> {
  const bytes = await within(new Response(conn.readable).bytes(), 2_000, "the connection to end");
  return new TextDecoder().decode(bytes);
}

const encode = (text: string) => new TextEncoder().encode(text);

Deno.test("startTcpProxy() forwards both ways, refuses connections while cut, and forwards again on the same port after restore()", async () => {
  await using echo = startEchoServer();
  await using proxy = startTcpProxy({ hostname: "127.0.0.1", port: echo.port });
  {
    using conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
    await conn.write(encode("hello"));
    assert.equal(await readExactly(conn, 5), "hello");
    assert.equal(proxy.upstreamBytes, 5);
    assert.equal(proxy.accepted, 1);
    await proxy.cut();
    assert.equal(await readToEnd(conn), "", "the connection ends with the cut");
  }
  assert.equal(proxy.openConnections, 0);
  await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: proxy.port }));
  proxy.restore();
  using again = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
  await again.write(encode("again"));
  assert.equal(await readExactly(again, 5), "again");
});

Deno.test("stall() holds a client's data until restore(), and held() tells it was held", async () => {
  await using echo = startEchoServer();
  await using proxy = startTcpProxy({ hostname: "127.0.0.1", port: echo.port });
  using conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
  proxy.stall();
  await conn.write(encode("held"));
  await within(proxy.held(), 2_000, "the write to be held");
  assert.equal(proxy.upstreamBytes, 0);
  proxy.restore();
  assert.equal(await readExactly(conn, 4), "held");
});

Deno.test("dropAfterUpstreamBytes passes that many bytes on, then closes the connection; dropConnections() closes the rest and new ones are taken", async () => {
  await using echo = startEchoServer();
  await using proxy = startTcpProxy({ hostname: "127.0.0.1", port: echo.port });
  using kept = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
  await within(proxy.acceptedReach(1), 2_000, "the first connection");
  proxy.dropAfterUpstreamBytes = 3;
  using dropped = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
  await dropped.write(encode("abcdef"));
  assert.equal(await readToEnd(dropped), "", "the connection ends with nothing sent back");
  assert.equal(proxy.upstreamBytes, 3);
  assert.equal(await echo.receivedOn(1), "abc");
  proxy.dropAfterUpstreamBytes = undefined;
  proxy.dropConnections();
  assert.equal(await readToEnd(kept), "");
  using later = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
  await later.write(encode("later"));
  assert.equal(await readExactly(later, 5), "later");
});

Deno.test("a black-holed connection is taken and held, and the target never sees it", async () => {
  await using echo = startEchoServer();
  await using proxy = startTcpProxy({ hostname: "127.0.0.1", port: echo.port });
  proxy.blackHole = true;
  using conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
  await conn.write(encode("lost"));
  await within(proxy.acceptedReach(1), 2_000, "the connection");
  assert.equal(proxy.openConnections, 1);
  await proxy.cut();
  assert.equal(await readToEnd(conn), "");
  assert.equal(echo.taken, 0);
  assert.equal(proxy.upstreamBytes, 0);
});

Deno.test("downstreamBytesPerSecond passes what the target sends on at about that rate", async () => {
  await using echo = startEchoServer();
  await using proxy = startTcpProxy({ hostname: "127.0.0.1", port: echo.port });
  proxy.downstreamBytesPerSecond = 20_000;
  using conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
  const started = performance.now();
  await conn.write(encode("x".repeat(4_000)));
  assert.equal((await readExactly(conn, 4_000)).length, 4_000);
  const took = performance.now() - started;
  assert.ok(took >= 180, `4,000 bytes at 20,000 bytes a second came in ${Math.round(took)} ms`);
});

Deno.test("startTcpProxy(url) forwards to the URL's host and port, and its url is that URL through the proxy", async () => {
  await using echo = startEchoServer();
  await using proxy = startTcpProxy(`postgres://alice@127.0.0.1:${echo.port}/chat?sslmode=disable`);
  assert.equal(proxy.url, `postgres://alice@127.0.0.1:${proxy.port}/chat?sslmode=disable`);
  using conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
  await conn.write(encode("hi"));
  assert.equal(await readExactly(conn, 2), "hi");
});
