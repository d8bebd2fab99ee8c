/**
 * A TCP proxy for tests, in the manner of toxiproxy: it forwards a loopback port to a target
 * and plays what a bad network or a failing target does to the connections between them.
 *
 * - `cut()`: every connection closed and new ones refused (the target gone), until `restore()`;
 *   `dropConnections()`: every connection closed, new ones taken (a network blip).
 * - `stall()`: connections kept open, nothing gets through (a hung server, a silent network),
 *   until `restore()`; `blackHole`: new connections taken and never forwarded, not even opened
 *   to the target (a handshake never answered).
 * - `delayMs`, `oneByteWrites`, `downstreamBytesPerSecond` (a slow link) and
 *   `dropAfterUpstreamBytes` (a connection lost in the middle of a client's frame): set while
 *   it runs, they apply to data read from then on.
 */
export interface TcpProxy extends AsyncDisposable {
  /** The loopback port clients connect to. */
  readonly port: number;
  /** Connections taken so far, black-holed ones included. */
  readonly accepted: number;
  /** Connections open right now, black-holed ones and ones still connecting included. */
  readonly openConnections: number;
  /** Bytes of the clients' passed on to the target so far, every connection's. */
  readonly upstreamBytes: number;
  /** Waits before passing each chunk on, in either direction. */
  delayMs: number;
  /** Passes bytes on one at a time (one write per byte). */
  oneByteWrites: boolean;
  /** Passes what the target sends on at about this rate (a slow downlink); undefined: at once. */
  downstreamBytesPerSecond: number | undefined;
  /**
   * Closes a connection (both ends) once the client has sent this many bytes through it, after
   * passing those on; the rest of what it read is dropped. Undefined: never.
   */
  dropAfterUpstreamBytes: number | undefined;
  /** New connections are taken and held, and nothing is passed on in either direction. */
  blackHole: boolean;
  /**
   * Closes every connection (dropping what a stall held, and ending the stall) and stops
   * listening: new connections are refused until restore().
   */
  cut(): Promise<void>;
  /** Closes every connection open now; new ones are taken as before. */
  dropConnections(): void;
  /**
   * Keeps connections open but holds back whatever a client sends (or, with "downstream",
   * whatever the target sends back; with "both", either: a connection gone silent), until
   * restore().
   */
  stall(direction?: StallDirection): void;
  /** Resolves once something was sent that the stall holds back. */
  held(): Promise<void>;
  /** Ends a stall (what it held is passed on) and, after a cut, listens again on the same port. */
  restore(): void;
  /** Resolves when the `accepted` count reaches `count`. */
  acceptedReach(count: number): Promise<void>;
}

/** Which data a stall holds back: the client's, the target's, or both. */
export type StallDirection = "upstream" | "downstream" | "both";

type Direction = Exclude<StallDirection, "both">;

/** One client's connection: its two ends, once the target's is open. */
interface Connection {
  readonly ends: Deno.TcpConn[];
  readonly closed: PromiseWithResolvers<void>;
  isClosed: boolean;
  upstreamBytes: number;
  done: Promise<void>;
}

/** The port a URL's scheme implies when it names none. */
const DEFAULT_PORTS: Record<string, number> = {
  "postgres:": 5432,
  "postgresql:": 5432,
  "nats:": 4222,
};

/**
 * Starts forwarding a free loopback port to `target`. Given a URL (a database's, a NATS
 * server's), forwards to its host and port, and `url` is that URL through the proxy.
 */
export function startTcpProxy(target: string): TcpProxy & { readonly url: string };
export function startTcpProxy(target: { hostname: string; port: number }): TcpProxy;
export function startTcpProxy(target: string | { hostname: string; port: number }): TcpProxy {
  if (typeof target !== "string") return createProxy(target);
  const url = new URL(target);
  const port = Number(url.port) || DEFAULT_PORTS[url.protocol];
  if (port === undefined) throw new Error(`no port in ${url.protocol} URL`);
  const proxy = createProxy({ hostname: url.hostname, port });
  url.hostname = "127.0.0.1";
  url.port = String(proxy.port);
  return Object.assign(proxy, { url: url.toString() });
}

function createProxy(target: { hostname: string; port: number }): TcpProxy {
  let listener: Deno.TcpListener | undefined;
  let accepting: Promise<void> = Promise.resolve();
  let port = 0;
  let accepted = 0;
  let upstreamBytes = 0;
  const connections = new Set<Connection>();
  const acceptWaiters = new Set<{ count: number; resolve: () => void }>();
  /** While stalled: `released` is resolved by restore() or cut(); held data waits for it. */
  let stalled: { direction: StallDirection; released: PromiseWithResolvers<void> } | undefined;
  let holding = Promise.withResolvers<void>();

  function listen() {
    listener = Deno.listen({ hostname: "127.0.0.1", port });
    port = listener.addr.port;
    accepting = accept(listener);
  }

  async function accept(from: Deno.TcpListener) {
    try {
      for await (const client of from) take(client);
    } catch {
      // the listener was closed by cut()
    }
  }

  function take(client: Deno.TcpConn) {
    accepted++;
    for (const waiter of [...acceptWaiters]) {
      if (accepted < waiter.count) continue;
      acceptWaiters.delete(waiter);
      waiter.resolve();
    }
    const connection: Connection = {
      ends: [client],
      closed: Promise.withResolvers<void>(),
      isClosed: false,
      upstreamBytes: 0,
      done: Promise.resolve(),
    };
    connections.add(connection);
    connection.done = serve(connection, client).finally(() => {
      close(connection);
      connections.delete(connection);
    });
  }

  async function serve(connection: Connection, client: Deno.TcpConn): Promise<void> {
    if (proxy.blackHole) {
      // held until the client goes or the proxy closes it; what it sends is read and dropped
      const buffer = new Uint8Array(16 * 1024);
      while (await client.read(buffer).catch(() => null) !== null) {
        // dropped
      }
      return;
    }
    const upstream = await Deno.connect(target).catch(() => undefined);
    if (!upstream) return;
    connection.ends.push(upstream);
    // closed by a cut while it connected: it must not outlive the cut (the caller closes it)
    if (connection.isClosed) return;
    await Promise.all([
      pump(connection, client, upstream, "upstream"),
      pump(connection, upstream, client, "downstream"),
    ]);
  }

  /** Copies until either side ends, then closes both (the other pump then ends too). */
  async function pump(connection: Connection, from: Deno.Conn, to: Deno.Conn, way: Direction) {
    const buffer = new Uint8Array(64 * 1024);
    try {
      while (true) {
        const read = await from.read(buffer);
        if (read === null) break;
        await gate(connection, way);
        if (connection.isClosed) break;
        if (proxy.delayMs > 0) await sleep(proxy.delayMs);
        let chunk = buffer.subarray(0, read);
        const limit = way === "upstream" ? proxy.dropAfterUpstreamBytes : undefined;
        const last = limit !== undefined && connection.upstreamBytes + read >= limit;
        if (last) chunk = chunk.subarray(0, Math.max(0, limit - connection.upstreamBytes));
        await write(to, chunk, way);
        if (way === "upstream") {
          connection.upstreamBytes += chunk.length;
          upstreamBytes += chunk.length;
        }
        if (last) break;
      }
    } catch {
      // one side was closed
    } finally {
      close(connection);
    }
  }

  /** Data read in one direction waits here while that direction is stalled. */
  async function gate(connection: Connection, way: Direction) {
    while (
      stalled && (stalled.direction === way || stalled.direction === "both") &&
      !connection.isClosed
    ) {
      holding.resolve();
      await Promise.race([stalled.released.promise, connection.closed.promise]);
    }
  }

  async function write(to: Deno.Conn, chunk: Uint8Array, way: Direction) {
    const rate = way === "downstream" ? proxy.downstreamBytesPerSecond : undefined;
    if (rate !== undefined) {
      for (let index = 0; index < chunk.length; index += 1024) {
        const slice = chunk.subarray(index, index + 1024);
        await sleep((slice.length / rate) * 1000);
        await writeAll(to, slice);
      }
    } else if (proxy.oneByteWrites) {
      for (let index = 0; index < chunk.length; index++) {
        await writeAll(to, chunk.subarray(index, index + 1));
      }
    } else {
      await writeAll(to, chunk);
    }
  }

  function close(connection: Connection) {
    connection.isClosed = true;
    for (const end of connection.ends) {
      try {
        end.close();
      } catch {
        // already closed
      }
    }
    connection.closed.resolve();
  }

  function release() {
    stalled?.released.resolve();
    stalled = undefined;
  }

  listen();
  const proxy: TcpProxy = {
    delayMs: 0,
    oneByteWrites: false,
    downstreamBytesPerSecond: undefined,
    dropAfterUpstreamBytes: undefined,
    blackHole: false,
    get port() {
      return port;
    },
    get accepted() {
      return accepted;
    },
    get openConnections() {
      return connections.size;
    },
    get upstreamBytes() {
      return upstreamBytes;
    },
    async cut() {
      listener?.close();
      listener = undefined;
      await accepting;
      const open = [...connections];
      open.forEach(close);
      // what a stall held back is lost with its connection, as in a real cut
      release();
      await Promise.all(open.map((connection) => connection.done));
    },
    dropConnections() {
      connections.forEach(close);
    },
    stall(direction = "upstream") {
      stalled = { direction, released: stalled?.released ?? Promise.withResolvers<void>() };
      holding = Promise.withResolvers<void>();
    },
    held() {
      return holding.promise;
    },
    restore() {
      release();
      if (!listener) listen();
    },
    acceptedReach(count) {
      if (accepted >= count) return Promise.resolve();
      const { promise, resolve } = Promise.withResolvers<void>();
      acceptWaiters.add({ count, resolve });
      return promise;
    },
    async [Symbol.asyncDispose]() {
      await this.cut();
    },
  };
  return proxy;
}

async function writeAll(to: Deno.Conn, bytes: Uint8Array) {
  let written = 0;
  while (written < bytes.length) written += await to.write(bytes.subarray(written));
}

function sleep(ms: number) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
