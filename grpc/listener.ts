import { type Server, ServerCredentials } from "@grpc/grpc-js";
import { errorFields, logger } from "../observability/log.ts";

/** Logged (warning) once per episode in which the gRPC port stopped accepting connections. */
export const GRPC_LISTENER_STOPPED =
  "the gRPC listener stopped accepting connections; it is bound again";
/** Logged once a probe is answered again after such an episode. */
export const GRPC_LISTENER_BACK = "the gRPC listener accepts connections again";

/** How often the listener is probed. */
export const PROBE_EVERY_MS = 2_000;
/**
 * How long a probe waits for the server's first HTTP/2 frame (grpc-js sends its SETTINGS as
 * soon as it accepts): silence for that long means no one accepts on the port.
 */
export const PROBE_SILENCE_MS = 2_000;

export interface GrpcListener {
  /** The port bound, kept when it is bound again. */
  readonly port: number;
  /** Stops probing (the grpc-js server itself is shut down by its owner). */
  close(): Promise<void>;
}

type Probe = "answers" | "silent" | "unknown";

/**
 * Binds `server` (plaintext) to `host:port` and keeps it accepting. grpc-js listens with
 * node:net, which under Deno stops accepting for good at the first failed accept (EMFILE when
 * the process is out of file descriptors) and says nothing: no 'error' event, `listening` stays
 * true, and connections queue in the kernel unanswered. So a probe connects to the port every
 * PROBE_EVERY_MS; a connection that hears nothing for PROBE_SILENCE_MS means the accept loop is
 * dead, and the port is unbound (grpc-js `unbind`: the sessions open on it are closed
 * gracefully) and bound again on the same port, again at each probe until that succeeds. A probe
 * that cannot connect (this process is out of descriptors itself) tells nothing and waits for
 * the next. One warning per episode, one line once a probe is answered again.
 * Rejects as grpc-js `bindAsync` does when the port cannot be bound at the start.
 */
export async function startGrpcListener(
  server: Server,
  options: { host: string; port: number },
): Promise<GrpcListener> {
  const log = logger("grpc");
  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  // a wildcard address is reached on loopback
  const probeHost = options.host === "0.0.0.0"
    ? "127.0.0.1"
    : options.host === "::"
    ? "::1"
    : options.host;
  const bind = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.bindAsync(
        `${host}:${port}`,
        ServerCredentials.createInsecure(),
        (error, bound) => error ? reject(error) : resolve(bound),
      );
    });

  const port = await bind(options.port);
  let bound = true;
  let failing = false;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<void> | undefined;
  /** The probe's connection, closed at once by `close`. */
  let probing: Deno.TcpConn | undefined;

  async function probe(): Promise<Probe> {
    let conn: Deno.TcpConn;
    try {
      conn = await Deno.connect({ hostname: probeHost, port });
    } catch {
      return "unknown";
    }
    probing = conn;
    let timedOut = false;
    const silence = setTimeout(() => {
      timedOut = true;
      conn.close();
    }, PROBE_SILENCE_MS);
    try {
      // bytes, or an end: either way someone accepted the connection
      await conn.read(new Uint8Array(64));
      return "answers";
    } catch {
      // reset (the port was closed with this connection queued), or closed by `close`
      return timedOut && !stopped ? "silent" : "unknown";
    } finally {
      clearTimeout(silence);
      probing = undefined;
      if (!timedOut) {
        try {
          conn.close();
        } catch {
          // closed by `close`
        }
      }
    }
  }

  async function rebind(): Promise<void> {
    try {
      if (bound) server.unbind(`${host}:${port}`);
      bound = false;
      await bind(port);
      bound = true;
    } catch (error) {
      // still out of descriptors, or the port taken meanwhile: again at the next probe
      log.debug("the gRPC listener could not be bound again", { ...errorFields(error) });
    }
  }

  async function check(): Promise<void> {
    if (!bound) await rebind();
    if (!bound || stopped) return;
    let result = await probe();
    if (result === "silent") {
      if (!failing) {
        failing = true;
        log.warn(GRPC_LISTENER_STOPPED, { port, probe_silence_ms: PROBE_SILENCE_MS });
      }
      await rebind();
      if (!bound || stopped) return;
      // the new listener, at once; if it is silent too, the next probe binds again
      result = await probe();
    }
    if (result === "answers" && failing && !stopped) {
      failing = false;
      log.info(GRPC_LISTENER_BACK, { port });
    }
  }

  function schedule() {
    timer = setTimeout(() => {
      running = check().finally(() => {
        running = undefined;
        if (!stopped) schedule();
      });
    }, PROBE_EVERY_MS);
  }
  schedule();

  return {
    port,
    async close() {
      stopped = true;
      clearTimeout(timer);
      try {
        probing?.close();
      } catch {
        // closed already
      }
      await running;
    },
  };
}
