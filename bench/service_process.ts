/** The service under test as a separate process, exactly as `deno task start` runs it. */

export interface ServiceProcess extends AsyncDisposable {
  pid: number;
  baseUrl: string;
  /** Resident memory of the service process, in bytes. */
  rss(): Promise<number>;
}

export async function freePort(): Promise<number> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return await Promise.resolve(port);
}

/** Resident set size of a process, by `ps` (reading /proc needs all permissions in Deno). */
export async function rssOf(pid: number): Promise<number> {
  const output = await new Deno.Command("ps", { args: ["-o", "rss=", "-p", String(pid)] }).output();
  return Number(new TextDecoder().decode(output.stdout).trim()) * 1024;
}

export async function startServiceProcess(env: Record<string, string>): Promise<ServiceProcess> {
  const port = await freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "start"],
    env: { ...env, PORT: String(port), HOST: "127.0.0.1", GRPC_ENABLED: "0", LOG_LEVEL: "warning" },
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const baseUrl = `http://127.0.0.1:${port}`;
  let exited = null as Deno.CommandStatus | null;
  child.status.then((status) => exited = status);
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const response = await fetch(`${baseUrl}/readyz`, { signal: AbortSignal.timeout(5_000) });
      await response.body?.cancel();
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    // a service that stopped (a bad setting, a database it cannot reach) has said why on stderr
    if (exited) throw new Error(`the service exited with code ${exited.code} before it was ready`);
    if (Date.now() > deadline) {
      await stopTask(child);
      throw new Error("the service did not become ready in 30 s");
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  // `deno task` runs the service as a child of its own: measure that one
  const pid = await serviceChildPid(child.pid);
  return {
    pid,
    baseUrl,
    rss: () => rssOf(pid),
    async [Symbol.asyncDispose]() {
      await stopTask(child, pid);
    },
  };
}

/** Stops the service (`pid`, default: found now) and waits for its `deno task` to end. */
async function stopTask(task: Deno.ChildProcess, pid?: number): Promise<void> {
  try {
    Deno.kill(pid ?? await serviceChildPid(task.pid), "SIGTERM");
  } catch {
    // gone already
  }
  await task.status;
}

async function serviceChildPid(taskPid: number): Promise<number> {
  const output = await new Deno.Command("ps", { args: ["-o", "pid=", "--ppid", String(taskPid)] })
    .output();
  const first = new TextDecoder().decode(output.stdout).trim().split(/\s+/)[0];
  return first ? Number(first) : taskPid;
}
