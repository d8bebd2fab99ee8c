/**
 * A TCP proxy for tests, in the manner of toxiproxy: it forwards a loopback port to a
 * target, and can cut every connection and refuse new ones (as if the target had gone),
 * or stall them (connections stay open, nothing gets through, as with a hung server), then
 * restore forwarding on the same port.
 */
export interface TcpProxy extends AsyncDisposable {
  /** The loopback port clients connect to. */
  readonly port: number;
  /** Connections being forwarded right now. */
  readonly openConnections: number;
  /** Bytes of the clients' passed on to the target so far, every connection's. */
  readonly upstreamBytes: number;
  /**
   * Closes every forwarded connection (dropping what a stall held) and stops listening: new
   * connections are refused.
   */
  cut(): Promise<void>;
  /**
   * Keeps connections open but holds back whatever a client sends (or, with "downstream",
   * whatever the target sends back; with "both", either: a connection gone silent), until
   * restore().
   */
  stall(direction?: StallDirection): void;
  /** Resolves once something was sent that the stall holds back. */
  held(): Promise<void>;
  /** Listens and forwards again, on the same port, and lets held data through. */
  restore(): void;
}

/** Which data a stall holds back: the client's, the target's, or both. */
export type StallDirection = "upstream" | "downstream" | "both";

/** Starts forwarding a free loopback port to `target`. */
export function startTcpProxy(target: { hostname: string; port: number }): TcpProxy {
  let listener: Deno.TcpListener | undefined;
  let accepting: Promise<void> = Promise.resolve();
  const pairs = new Set<{ client: Deno.TcpConn; upstream: Deno.TcpConn; done: Promise<void> }>();
  let port = 0;
  /** While stalled: resolved by restore(); data from clients waits for it. */
  let stalled: PromiseWithResolvers<void> | undefined;
  let stalledDirection: StallDirection = "upstream";
  let holding = Promise.withResolvers<void>();
  const passed = { upstream: 0 };

  /** Data in one direction passes here: held while that direction is stalled. */
  const gate = (direction: "upstream" | "downstream") => async () => {
    if (!stalled || (stalledDirection !== direction && stalledDirection !== "both")) return;
    holding.resolve();
    await stalled.promise;
  };

  function listen() {
    listener = Deno.listen({ hostname: "127.0.0.1", port });
    port = listener.addr.port;
    accepting = accept(listener);
  }

  async function accept(from: Deno.TcpListener) {
    try {
      for await (const client of from) forward(client, from);
    } catch {
      // the listener was closed by cut()
    }
  }

  async function forward(client: Deno.TcpConn, from: Deno.TcpListener) {
    let upstream: Deno.TcpConn;
    try {
      upstream = await Deno.connect(target);
    } catch {
      return closeQuietly(client);
    }
    // accepted before a cut() but connected after it: cut too, or it would outlive the cut
    if (listener !== from) {
      closeQuietly(client);
      return closeQuietly(upstream);
    }
    const pair = {
      client,
      upstream,
      done: Promise.all([
        pump(client, upstream, gate("upstream"), (bytes) => passed.upstream += bytes),
        pump(upstream, client, gate("downstream")),
      ]).then(() => {
        pairs.delete(pair);
      }),
    };
    pairs.add(pair);
  }

  listen();
  return {
    get port() {
      return port;
    },
    get openConnections() {
      return pairs.size;
    },
    get upstreamBytes() {
      return passed.upstream;
    },
    async cut() {
      listener?.close();
      listener = undefined;
      await accepting;
      const open = [...pairs];
      for (const { client, upstream } of open) {
        closeQuietly(client);
        closeQuietly(upstream);
      }
      // what a stall held back is lost with its connection, as in a real cut
      stalled?.resolve();
      stalled = undefined;
      await Promise.all(open.map((pair) => pair.done));
    },
    stall(direction = "upstream") {
      stalledDirection = direction;
      stalled ??= Promise.withResolvers<void>();
      holding = Promise.withResolvers<void>();
    },
    held() {
      return holding.promise;
    },
    restore() {
      stalled?.resolve();
      stalled = undefined;
      if (!listener) listen();
    },
    async [Symbol.asyncDispose]() {
      await this.cut();
    },
  };
}

/** Copies until either side ends, then closes both (the other pump then ends too). */
async function pump(
  from: Deno.Conn,
  to: Deno.Conn,
  gate?: () => Promise<void>,
  onWritten?: (bytes: number) => void,
): Promise<void> {
  const buffer = new Uint8Array(64 * 1024);
  try {
    while (true) {
      const read = await from.read(buffer);
      if (read === null) break;
      await gate?.();
      let written = 0;
      while (written < read) written += await to.write(buffer.subarray(written, read));
      onWritten?.(read);
    }
  } catch {
    // one side was closed
  } finally {
    closeQuietly(from);
    closeQuietly(to);
  }
}

function closeQuietly(conn: Deno.Conn) {
  try {
    conn.close();
  } catch {
    // already closed
  }
}

/** A proxy in front of the database of `databaseUrl`, with `url`: that database through it. */
export function startDatabaseProxy(databaseUrl: string): TcpProxy & { readonly url: string } {
  const target = new URL(databaseUrl);
  const proxy = startTcpProxy({ hostname: target.hostname, port: Number(target.port) || 5432 });
  const proxied = new URL(databaseUrl);
  proxied.hostname = "127.0.0.1";
  proxied.port = String(proxy.port);
  return Object.assign(proxy, { url: proxied.toString() });
}
