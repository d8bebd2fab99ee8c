/**
 * A TCP proxy for tests that plays a bad network between a client and a target: it can delay
 * each chunk, pass bytes on one at a time, stall (keep connections open and pass nothing on),
 * drop a connection once the client has sent some bytes through it (in the middle of a frame),
 * and black-hole (take connections and never pass anything on, the handshake included). The
 * behaviour can be changed while it runs; it applies to data read from then on.
 */
export interface BadNetwork extends AsyncDisposable {
  /** The loopback port clients connect to. */
  readonly port: number;
  /** Connections taken so far, black-holed ones included. */
  readonly accepted: number;
  /** Connections open right now, black-holed ones included. */
  readonly open: number;
  /** Waits before passing each chunk on, in either direction. */
  delayMs: number;
  /** Passes bytes on one at a time (one write per byte). */
  oneByteWrites: boolean;
  /** Passes what the target sends on at about this rate (a slow downlink); undefined: at once. */
  downstreamBytesPerSecond: number | undefined;
  /**
   * Closes a connection (both ends, with no WebSocket close) once the client has sent this many
   * bytes through it, the handshake's included, after passing on the first of them; the rest of
   * what it read is dropped. Undefined: never.
   */
  dropAfterUpstreamBytes: number | undefined;
  /** New connections are taken and held, and nothing is passed on in either direction. */
  blackHole: boolean;
  /** Passes nothing on in either direction, connections kept open, until `flow()`. */
  stall(): void;
  /** Ends a stall: what it held is passed on. */
  flow(): void;
  /** Closes every connection at once (no WebSocket close). */
  cutAll(): void;
  /** Resolves when the `accepted` count reaches `count`. */
  acceptedReach(count: number): Promise<void>;
}

export function startBadNetwork(target: { hostname: string; port: number }): BadNetwork {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const done = new Set<Promise<void>>();
  const accepting: Array<{ count: number; resolve: () => void }> = [];
  let accepted = 0;
  let stalled: PromiseWithResolvers<void> | undefined;

  const network = {
    delayMs: 0,
    oneByteWrites: false,
    downstreamBytesPerSecond: undefined as number | undefined,
    dropAfterUpstreamBytes: undefined as number | undefined,
    blackHole: false,
  };

  const track = (conn: Deno.Conn) => {
    conns.add(conn);
    return conn;
  };
  const close = (conn: Deno.Conn) => {
    conns.delete(conn);
    try {
      conn.close();
    } catch {
      // already closed
    }
  };

  async function pump(
    from: Deno.Conn,
    to: Deno.Conn,
    upstream: boolean,
    counted: { bytes: number },
  ): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    try {
      while (true) {
        const read = await from.read(buffer);
        if (read === null) break;
        let chunk = buffer.subarray(0, read);
        while (stalled) await stalled.promise;
        if (network.delayMs > 0) await new Promise((r) => setTimeout(r, network.delayMs));
        const limit = network.dropAfterUpstreamBytes;
        let drop = false;
        if (upstream && limit !== undefined && counted.bytes + read >= limit) {
          chunk = chunk.subarray(0, Math.max(0, limit - counted.bytes));
          drop = true;
        }
        if (upstream) counted.bytes += chunk.length;
        const rate = network.downstreamBytesPerSecond;
        if (!upstream && rate !== undefined) {
          for (let index = 0; index < chunk.length; index += 1024) {
            const slice = chunk.subarray(index, index + 1024);
            await new Promise((resolve) => setTimeout(resolve, (slice.length / rate) * 1000));
            let written = 0;
            while (written < slice.length) written += await to.write(slice.subarray(written));
          }
        } else if (network.oneByteWrites) {
          for (let index = 0; index < chunk.length; index++) {
            await to.write(chunk.subarray(index, index + 1));
          }
        } else {
          let written = 0;
          while (written < chunk.length) written += await to.write(chunk.subarray(written));
        }
        if (drop) break;
      }
    } catch {
      // one side was closed
    } finally {
      close(from);
      close(to);
    }
  }

  async function forward(client: Deno.Conn): Promise<void> {
    if (network.blackHole) {
      // held until the client goes or the network is disposed; what it sends is read and dropped
      const buffer = new Uint8Array(16 * 1024);
      try {
        while (await client.read(buffer) !== null) {
          // dropped
        }
      } catch {
        // closed
      }
      return close(client);
    }
    let upstream: Deno.Conn;
    try {
      upstream = track(await Deno.connect(target));
    } catch {
      return close(client);
    }
    const counted = { bytes: 0 };
    await Promise.all([
      pump(client, upstream, true, counted),
      pump(upstream, client, false, counted),
    ]);
  }

  const accepting_ = (async () => {
    try {
      for await (const client of listener) {
        track(client);
        accepted++;
        for (const waiter of [...accepting]) {
          if (accepted >= waiter.count) {
            accepting.splice(accepting.indexOf(waiter), 1);
            waiter.resolve();
          }
        }
        const forwarding = forward(client);
        done.add(forwarding);
        forwarding.finally(() => done.delete(forwarding));
      }
    } catch {
      // the listener was closed
    }
  })();

  const controls = {
    get port() {
      return (listener.addr as Deno.NetAddr).port;
    },
    get accepted() {
      return accepted;
    },
    get open() {
      return [...done].length;
    },
    stall() {
      stalled ??= Promise.withResolvers<void>();
    },
    flow() {
      stalled?.resolve();
      stalled = undefined;
    },
    cutAll() {
      for (const conn of [...conns]) close(conn);
    },
    acceptedReach(count: number): Promise<void> {
      if (accepted >= count) return Promise.resolve();
      const { promise, resolve } = Promise.withResolvers<void>();
      accepting.push({ count, resolve });
      return promise;
    },
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting_;
      network.blackHole = false;
      this.flow();
      this.cutAll();
      await Promise.all([...done]);
    },
  };
  // defined, not assigned: Object.assign would copy the getters' values of now
  return Object.defineProperties(network, Object.getOwnPropertyDescriptors(controls)) as
    & typeof network
    & typeof controls;
}
