import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import { embeddedLockFile } from "../config.ts";

/** An in-process PostgreSQL for development, reachable over TCP like any server. */
export interface EmbeddedPostgres {
  /** A postgres:// URL for postgres.js. */
  url: string;
  /** The whole database as a tarball, for another to start from (`startEmbeddedPostgres`). */
  dumpDataDir(): Promise<Blob>;
  close(): Promise<void>;
}

/** The embedded database's directory is open in another process. */
export class EmbeddedDatabaseInUse extends Error {
  override name = "EmbeddedDatabaseInUse";
}

/**
 * Starts PGlite on `dataDir` (created if missing; `memory://` for a throwaway database)
 * behind a socket server on a free loopback port. One process at a time may open a directory:
 * PGlite has no locking of its own, and two writers would corrupt it. Rejects with
 * {@link EmbeddedDatabaseInUse} while another holds it (`deno task dev`, `seed`, `migrate`).
 * With `loadDataDir` (a `dumpDataDir` of another), a new database starts as a copy of that one,
 * in about a second instead of the two or three initdb takes.
 */
export async function startEmbeddedPostgres(
  dataDir: string,
  options: { loadDataDir?: Blob } = {},
): Promise<EmbeddedPostgres> {
  const lock = dataDir.startsWith("memory://") ? undefined : await lockDirectory(dataDir);
  try {
    const db = await PGlite.create(dataDir, options);
    const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections: 16 });
    await server.start();
    const address = server.getServerConn();
    return {
      url: `postgres://postgres@${address}/postgres?sslmode=disable`,
      dumpDataDir: () => db.dumpDataDir("none"),
      async close() {
        try {
          await server.stop();
          await db.close();
        } finally {
          lock?.close();
        }
      },
    };
  } catch (error) {
    lock?.close();
    throw error;
  }
}

/** An exclusive lock on a file beside the directory (not in it: PGlite owns its contents). */
async function lockDirectory(dataDir: string): Promise<Deno.FsFile> {
  await Deno.mkdir(dataDir, { recursive: true });
  const lock = await Deno.open(embeddedLockFile(dataDir), {
    create: true,
    write: true,
  });
  if (await lock.tryLock(true)) return lock;
  lock.close();
  throw new EmbeddedDatabaseInUse(
    `the embedded database in ${dataDir} is open in another process (deno task dev?): stop it, ` +
      "or give DATABASE_URL",
  );
}
