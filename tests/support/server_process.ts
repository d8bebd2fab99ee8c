import { within } from "./wait.ts";

/** A server a test started as a child process. */
export interface ServerProcess {
  /** Sends SIGTERM and waits for the process and its output to end. */
  stop(): Promise<void>;
}

/**
 * Runs `command` with `args` and resolves once its standard error shows `readyText`; one that
 * ends first, or is not ready within 10 s, is stopped and the start rejects with what it printed.
 * Its standard error is read to the end, so that the pipe never fills.
 */
export async function startServerProcess(
  command: string,
  args: readonly string[],
  options: { readyText: string; what: string },
): Promise<ServerProcess> {
  const child = new Deno.Command(command, {
    args: [...args],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const { promise: ready, resolve, reject } = Promise.withResolvers<void>();
  const drained = (async () => {
    let seen = "";
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      seen += chunk;
      if (seen.includes(options.readyText)) resolve();
    }
    reject(new Error(`${options.what} ended before it was ready:\n${seen}`));
  })();
  async function stop() {
    try {
      child.kill("SIGTERM");
    } catch {
      // already ended
    }
    await child.status;
    await drained;
  }
  try {
    await within(ready, 10_000, options.what);
  } catch (error) {
    await stop();
    throw error;
  }
  return { stop };
}
