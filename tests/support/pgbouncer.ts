import { freePort } from "./free_port.ts";
import { startServerProcess } from "./server_process.ts";

/** Debian's PgBouncer, which CI installs (.ci/run); tests that need it are skipped without it. */
export const PGBOUNCER_PATH = "/usr/sbin/pgbouncer";

export function hasPgBouncer(): boolean {
  try {
    return Deno.statSync(PGBOUNCER_PATH).isFile;
  } catch {
    return false;
  }
}

/**
 * A PgBouncer of a test's own in session mode, on a free loopback port, in front of the database
 * of `databaseUrl` (trust authentication, as the test server has), with `settings` added to its
 * `[pgbouncer]` section. `url` is that database through it. Its files are in a temporary
 * directory, removed on dispose with the process.
 */
export async function startPgBouncer(
  databaseUrl: string,
  settings: Record<string, string> = {},
): Promise<{ url: string } & AsyncDisposable> {
  const target = new URL(databaseUrl);
  const database = target.pathname.slice(1);
  const port = freePort();
  const dir = await Deno.makeTempDir({ prefix: "pgbouncer-" });
  // PgBouncer refuses to run as root: it then runs as nobody, who must read its files
  await Deno.chmod(dir, 0o777);
  const ini = `${dir}/pgbouncer.ini`;
  await Deno.writeTextFile(`${dir}/userlist.txt`, `"${target.username}" ""\n`, { mode: 0o644 });
  await Deno.writeTextFile(
    ini,
    [
      "[databases]",
      `${database} = host=${target.hostname} port=${target.port || 5432} dbname=${database}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "pool_mode = session",
      "auth_type = trust",
      `auth_file = ${dir}/userlist.txt`,
      ...Object.entries(settings).map(([name, value]) => `${name} = ${value}`),
      "",
    ].join("\n"),
    { mode: 0o644 },
  );
  // PgBouncer logs to standard error; "process up" once it listens
  const server = await startServerProcess(
    PGBOUNCER_PATH,
    [...(Deno.uid() === 0 ? ["-u", "nobody"] : []), ini],
    { readyText: "process up", what: `pgbouncer on port ${port}` },
  ).catch(async (error) => {
    await Deno.remove(dir, { recursive: true });
    throw error;
  });
  async function stop() {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
  const url = new URL(databaseUrl);
  url.hostname = "127.0.0.1";
  url.port = String(port);
  return { url: url.toString(), [Symbol.asyncDispose]: stop };
}
