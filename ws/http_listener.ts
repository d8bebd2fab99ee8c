import { logger } from "../observability/log.ts";
import { createRelisten } from "../relisten.ts";

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
 * open are kept and the port is opened again as relisten.ts has it: closed meanwhile, opened
 * after a pause, one warning per episode.
 * Throws as Deno.serve does when the port cannot be bound at the start.
 */
export function startHttpListener(
  handler: Deno.ServeHandler<Deno.NetAddr>,
  options: HttpListenerOptions,
): HttpListener {
  /**
   * Every server that may still serve connections, a failed one included once it took a request
   * (its connections go on): a shutdown awaits them all.
   */
  const servers = new Set<Deno.HttpServer<Deno.NetAddr>>();
  /** The server listening now, or the last one that failed. */
  let current: Deno.HttpServer<Deno.NetAddr> | undefined;

  function listen(port: number): Deno.HttpServer<Deno.NetAddr> {
    let served = false;
    const server = Deno.serve(
      { hostname: options.hostname, port, onListen: () => {} },
      (request, info) => {
        served = true;
        // a request on a connection of a server that failed says nothing of the port
        if (server === current) relisten.accepted();
        return handler(request, info);
      },
    );
    current = server;
    servers.add(server);
    server.finished.then(() => servers.delete(server), (error) => {
      // one that failed before its first request has nothing to finish: a long episode of
      // failures one after another must not pile them up
      if (!served) servers.delete(server);
      relisten.failed(error);
    });
    return server;
  }

  const relisten = createRelisten(() => listen(port), { name: "HTTP", log: logger("http") });
  const port = listen(options.port).addr.port;
  return {
    port,
    async shutdown() {
      relisten.stop();
      await Promise.all([...servers].map((server) => server.shutdown()));
    },
  };
}
