import assert from "node:assert/strict";
import type { TestCluster } from "./service.ts";

/**
 * An upload sent one byte per chunk. Deno.serve hands each piece of a request body to the
 * handler as a view onto its own 64 KiB buffer, however few bytes it carries: held as they
 * came, the pieces made the server hold 64 KiB per byte of upload, before the type is known (up
 * to about 1 MiB behind an ID3 tag) and between batches afterwards.
 */

const PIECES = 16_384; // 16 KiB of file, ~100 KiB on the wire
const ALLOWED_GROWTH = 256 * 1024 * 1024;
const encoder = new TextEncoder();

/** An upload over raw HTTP/1.1: `head` as one chunk, then PIECES chunks of one byte each. */
export async function trickleUpload(cluster: TestCluster, head: Uint8Array): Promise<Deno.TcpConn> {
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  const token = await cluster.token("alice");
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: cluster.main.service.port });
  const request = `POST /v1/media?chat_id=${chat.id}&media_type=audio HTTP/1.1\r\n` +
    `Host: x\r\nAuthorization: Bearer ${token}\r\nTransfer-Encoding: chunked\r\n\r\n` +
    `${head.length.toString(16)}\r\n`;
  await writeAll(conn, encoder.encode(request));
  await writeAll(conn, head);
  await writeAll(conn, encoder.encode("\r\n" + "1\r\n\0\r\n".repeat(PIECES)));
  return conn;
}

async function writeAll(conn: Deno.TcpConn, bytes: Uint8Array) {
  for (let offset = 0; offset < bytes.length;) offset += await conn.write(bytes.subarray(offset));
}

/**
 * The largest growth of memory held outside the JS heap (ArrayBuffers, what V8 counts as
 * `external`) seen within `ms` of `base`, while the server works through the pieces; RSS alongside.
 */
export async function peakGrowth(
  base: Deno.MemoryUsage,
  ms: number,
): Promise<{ external: number; rss: number }> {
  const peak = { external: 0, rss: 0 };
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const now = Deno.memoryUsage();
    peak.external = Math.max(peak.external, now.external - base.external);
    peak.rss = Math.max(peak.rss, now.rss - base.rss);
    if (peak.external > ALLOWED_GROWTH) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return peak;
}

export function assertBounded(growth: { external: number; rss: number }) {
  const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
  assert.ok(
    growth.external < ALLOWED_GROWTH,
    `external memory grew by ${mib(growth.external)} MiB (RSS by ${mib(growth.rss)} MiB) ` +
      `for ${PIECES} bytes of upload held`,
  );
}
