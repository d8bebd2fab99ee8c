import { createWatch, within } from "./wait.ts";

/** A loopback TCP server that sends back what it is sent; closed with its connections. */
export function startEchoServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  /** What each connection received, once it ended. */
  const received: Array<{ ended: Promise<string> }> = [];
  const watch = createWatch();
  const echo = async (conn: Deno.Conn) => {
    const decoder = new TextDecoder();
    let text = "";
    try {
      for await (const chunk of conn.readable) {
        text += decoder.decode(chunk);
        await conn.write(chunk);
      }
    } catch {
      // closed by the peer or by close()
    }
    return text;
  };
  const accepting = (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      received.push({ ended: echo(conn) });
      watch.changed();
    }
  })().catch(() => {});
  return {
    port: listener.addr.port,
    /** Connections taken so far. */
    get taken() {
      return conns.length;
    },
    /** What the `index`th connection taken received, once it ended. */
    async receivedOn(index: number): Promise<string> {
      const { ended } = await watch.until(() => received[index], `connection ${index} taken`);
      return await within(ended, 2_000, `connection ${index} to end`);
    },
    async close() {
      listener.close();
      await accepting;
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // already closed
        }
      }
      await Promise.all(received.map(({ ended }) => ended));
    },
    async [Symbol.asyncDispose]() {
      await this.close();
    },
  };
}
