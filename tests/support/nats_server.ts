import { freePort } from "./free_port.ts";
import { type ServerProcess, startServerProcess } from "./server_process.ts";

/** A `nats-server` of a test's own, which the test can stop and start again on its port. */
export interface NatsServer extends AsyncDisposable {
  readonly port: number;
  readonly url: string;
  /** Stops the server (SIGTERM) and waits for the process to end. */
  stop(): Promise<void>;
  /** Starts it again on the same port; resolves once it accepts clients. */
  start(): Promise<void>;
}

/**
 * Starts `nats-server` on a free loopback port, with `args` added (`--user`, `--js`, ...);
 * resolves once it is ready for clients.
 */
export async function startNatsServer(args: readonly string[] = []): Promise<NatsServer> {
  const port = freePort();
  let running: ServerProcess | undefined;

  async function start() {
    if (running) return;
    running = await startServerProcess("nats-server", [
      "-a",
      "127.0.0.1",
      "-p",
      String(port),
      ...args,
    ], { readyText: "Server is ready", what: `nats-server on port ${port}` });
  }

  async function stop() {
    const current = running;
    running = undefined;
    await current?.stop();
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
