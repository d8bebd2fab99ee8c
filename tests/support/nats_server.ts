import { freePort } from "./free_port.ts";
import { within } from "./wait.ts";

/** A `nats-server` of a test's own, which the test can stop and start again on its port. */
export interface NatsServer extends AsyncDisposable {
  readonly port: number;
  readonly url: string;
  /** Stops the server (SIGTERM) and waits for the process to end. */
  stop(): Promise<void>;
  /** Starts it again on the same port; resolves once it accepts clients. */
  start(): Promise<void>;
}

interface Running {
  child: Deno.ChildProcess;
  drained: Promise<void>;
}

/**
 * Starts `nats-server` on a free loopback port, with `args` added (`--user`, `--js`, ...);
 * resolves once it is ready for clients.
 */
export async function startNatsServer(args: readonly string[] = []): Promise<NatsServer> {
  const port = freePort();
  let running: Running | undefined;

  async function start() {
    if (running) return;
    const child = new Deno.Command("nats-server", {
      args: ["-a", "127.0.0.1", "-p", String(port), ...args],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const { promise: ready, resolve, reject } = Promise.withResolvers<void>();
    // nats-server logs to stderr; read it to the end so the pipe never fills
    const drained = (async () => {
      let seen = "";
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        seen += chunk;
        if (seen.includes("Server is ready")) resolve();
      }
      reject(new Error(`nats-server on ${port} ended before it was ready:\n${seen}`));
    })();
    running = { child, drained };
    try {
      await within(ready, 10_000, `nats-server on port ${port}`);
    } catch (error) {
      await stop();
      throw error;
    }
  }

  async function stop() {
    const current = running;
    if (!current) return;
    running = undefined;
    try {
      current.child.kill("SIGTERM");
    } catch {
      // already ended
    }
    await current.child.status;
    await current.drained;
  }

  await start();
  return {
    port,
    url: `nats://127.0.0.1:${port}`,
    stop,
    start,
    [Symbol.asyncDispose]: stop,
  };
}
