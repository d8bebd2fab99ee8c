/**
 * TLS for the gRPC plane, terminated by Deno in front of grpc-js. grpc-js's own TLS server
 * (node:http2 createSecureServer as grpc-js sets it up) fails its handshakes under Deno 2.9
 * ("excessive message size" at the client), while Deno's native TLS is solid; so the gRPC
 * server listens in plaintext on a loopback port of its own and this front takes the public
 * port, speaks TLS with ALPN h2, and copies bytes both ways.
 */
export interface TlsFront {
  port: number;
  /** Stops accepting and cuts every connection. */
  close(): Promise<void>;
}

export function startTlsFront(options: {
  host: string;
  port: number;
  cert: string;
  key: string;
  /** The plaintext gRPC server on 127.0.0.1. */
  upstreamPort: number;
  onError: (error: unknown, context: string) => void;
}): TlsFront {
  const listener = Deno.listenTls({
    hostname: options.host,
    port: options.port,
    cert: options.cert,
    key: options.key,
    alpnProtocols: ["h2"],
  });
  const open = new Set<Deno.Conn>();

  async function relay(client: Deno.TlsConn) {
    let upstream: Deno.TcpConn | undefined;
    open.add(client);
    try {
      await client.handshake();
      upstream = await Deno.connect({ hostname: "127.0.0.1", port: options.upstreamPort });
      open.add(upstream);
      // Either side ending ends both: a half-open gRPC connection is of no use to anyone.
      await Promise.race([
        client.readable.pipeTo(upstream.writable, { preventClose: true }),
        upstream.readable.pipeTo(client.writable, { preventClose: true }),
      ]);
    } catch {
      // a failed handshake or a reset is the client's business; nothing to report
    } finally {
      for (const conn of [client, upstream]) {
        if (!conn) continue;
        open.delete(conn);
        try {
          conn.close();
        } catch {
          // already closed
        }
      }
    }
  }

  const accepting = (async () => {
    try {
      for await (const client of listener) void relay(client);
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource)) options.onError(error, "grpc tls accept");
    }
  })();

  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      try {
        listener.close();
      } catch {
        // already closed
      }
      await accepting;
      for (const conn of [...open]) {
        try {
          conn.close();
        } catch {
          // already closed
        }
      }
    },
  };
}
