import { errorFields, logger } from "../observability/log.ts";

/** How long the HTTP port stays closed after its accept loop failed: hyper's sleep_on_errors. */
export const RELISTEN_AFTER_MS = 1_000;

export interface HttpListenerOptions {
  hostname: string;
  /** 0: a port the system chooses, kept when the listener is opened again. */
  port: number;
}

export interface HttpListener {
  /** The port bound. */
  readonly port: number;
  /** Stops listening and lets the requests under way finish (Deno's graceful shutdown). */
  shutdown(): Promise<void>;
}

/**
 * Deno.serve that outlives a failure of its accept loop. Deno ends the loop at the first accept
 * error, such as EMFILE when the process is out of file descriptors, and rejects `finished`,
 * which, left unhandled, ends the process (denoland/deno#10148). Here the connections already
 * open are kept, the port is closed (new connections are refused) and opened again after a
 * pause, and again after each further failure, so an exhausted process neither exits nor spins.
 * One warning per episode, one line once a connection is accepted again.
 * Throws as Deno.serve does when the port cannot be bound at the start.
 */
export function startHttpListener(
  handler: Deno.ServeHandler<Deno.NetAddr>,
  options: HttpListenerOptions,
): HttpListener {
  const log = logger("http");
  /**
   * Every server that may still serve connections, a failed one included once it took a request
   * (its connections go on): a shutdown awaits them all.
   */
  const servers = new Set<Deno.HttpServer<Deno.NetAddr>>();
  /** The server listening now, or the last one that failed. */
  let current: Deno.HttpServer<Deno.NetAddr> | undefined;
  let failing = false;
  let stopped = false;
  let relistenTimer: ReturnType<typeof setTimeout> | undefined;

  function listen(port: number): Deno.HttpServer<Deno.NetAddr> {
    let served = false;
    const server = Deno.serve(
      { hostname: options.hostname, port, onListen: () => {} },
      (request, info) => {
        served = true;
        // a request on a connection of a server that failed says nothing of the port
        if (failing && server === current) {
          failing = false;
          log.info("the HTTP listener accepts connections again");
        }
        return handler(request, info);
      },
    );
    current = server;
    servers.add(server);
    server.finished.then(() => servers.delete(server), (error) => {
      // one that failed before its first request has nothing to finish: a long episode of
      // failures one after another must not pile them up
      if (!served) servers.delete(server);
      failed(error);
    });
    return server;
  }

  function failed(error: unknown) {
    if (stopped) return;
    if (!failing) {
      failing = true;
      log.warn("the HTTP listener failed; new connections are refused until it listens again", {
        ...errorFields(error),
        relisten_after_ms: RELISTEN_AFTER_MS,
      });
    }
    relistenTimer = setTimeout(relisten, RELISTEN_AFTER_MS);
  }

  function relisten() {
    relistenTimer = undefined;
    if (stopped) return;
    try {
      listen(port);
    } catch (error) {
      // still out of descriptors: the listening socket itself needs one
      failed(error);
    }
  }

  const port = listen(options.port).addr.port;
  return {
    port,
    async shutdown() {
      stopped = true;
      clearTimeout(relistenTimer);
      await Promise.all([...servers].map((server) => server.shutdown()));
    },
  };
}
