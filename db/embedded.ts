import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

/** An in-process PostgreSQL for development, reachable over TCP like any server. */
export interface EmbeddedPostgres {
  /** A postgres:// URL for postgres.js. */
  url: string;
  close(): Promise<void>;
}

/**
 * Starts PGlite on `dataDir` (created if missing; `memory://` for a throwaway database)
 * behind a socket server on a free loopback port.
 */
export async function startEmbeddedPostgres(dataDir: string): Promise<EmbeddedPostgres> {
  if (!dataDir.startsWith("memory://")) await Deno.mkdir(dataDir, { recursive: true });
  const db = await PGlite.create(dataDir);
  const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections: 16 });
  await server.start();
  const address = server.getServerConn();
  return {
    url: `postgres://postgres@${address}/postgres?sslmode=disable`,
    async close() {
      await server.stop();
      await db.close();
    },
  };
}
