import { jetstreamManager } from "@nats-io/jetstream";
import { Objm } from "@nats-io/obj";
import { connect } from "@nats-io/transport-node";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import postgres from "postgres";
import type { TestCluster } from "./service.ts";
import { TEST_NATS_URL } from "./service.ts";
import { acked, joinChat } from "./steps.ts";
import { sample } from "./service_process.ts";
import { within } from "./wait.ts";

/**
 * Media the tests send: tests/fixtures/ holds small real files made by ffmpeg, one per
 * accepted kind of container (see tests/fixtures/README.md).
 */
export const FIXTURES = {
  image: ["image.png", "image.jpg", "image.gif", "image.webp"],
  audio: ["audio.mp3", "audio.ogg", "audio.wav", "audio.m4a", "audio.webm"],
  video: ["video.mp4", "video.webm", "video.mov"],
} as const;

export function fixture(name: string): Promise<Uint8Array<ArrayBuffer>> {
  return Deno.readFile(new URL(`../fixtures/${name}`, import.meta.url));
}

/** A real file padded with zeros to exactly `size` bytes (players ignore trailing bytes). */
export async function paddedFixture(
  name: string,
  size: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const bytes = await fixture(name);
  const padded = new Uint8Array(size);
  padded.set(bytes.subarray(0, size));
  return padded;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** A chat of alice and acme with an image alice sent over her socket (no HTTP request). */
export async function chatWithImage(cluster: TestCluster) {
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  await using alice = await joinChat(cluster, "alice", chat.id);
  const ack = await acked(alice, {
    action: "send_message",
    receiver_id: "acme",
    media_type: "image",
    image: (await fixture("image.png")).toBase64(),
  });
  return { chat, mediaUrl: String(ack.message.media_url) };
}

/** `GET`s a media URL as `userId`; the body is read whole (test files are small). */
export async function fetchMedia(
  cluster: TestCluster,
  userId: string | null,
  mediaUrl: string,
  init: { headers?: Record<string, string>; method?: string } = {},
): Promise<{ response: Response; body: Uint8Array }> {
  const headers: Record<string, string> = { ...init.headers };
  if (userId !== null) headers.authorization = `Bearer ${await cluster.token(userId)}`;
  const response = await fetch(`${cluster.main.httpUrl}${mediaUrl}`, {
    method: init.method ?? "GET",
    headers,
  });
  return { response, body: await response.bytes() };
}

/** `POST /v1/media` as `userId`; resolves with the status and the JSON answer. */
export async function uploadMedia(
  cluster: TestCluster,
  userId: string,
  query: Record<string, string>,
  body: BodyInit,
  headers: Record<string, string> = {},
  // deno-lint-ignore no-explicit-any
): Promise<{ status: number; headers: Headers; json: any }> {
  const url = new URL(`${cluster.main.httpUrl}/v1/media`);
  for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
  const response = await fetch(url, {
    method: "POST",
    body,
    headers: { authorization: `Bearer ${await cluster.token(userId)}`, ...headers },
  });
  return { status: response.status, headers: response.headers, json: await response.json() };
}

/** One series of the instance's metrics; 0 when absent. */
export async function metric(cluster: TestCluster, series: string): Promise<number> {
  const response = await fetch(`${cluster.main.httpUrl}/metrics`);
  return sample(await response.text(), series);
}

/**
 * Waits, up to 10 s, until the media requests open on the route are `count`: `/v1/media` ones,
 * or with `via: "socket"` base64 media in `send_message` frames.
 */
export async function untilOpen(
  cluster: TestCluster,
  route: string,
  count: number,
  via = "http",
): Promise<void> {
  const series = `chat_media_open_requests{route="${route}",via="${via}"}`;
  const deadline = Date.now() + 10_000;
  while (await metric(cluster, series) !== count) {
    if (Date.now() > deadline) assert.fail(`${series} never became ${count}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** An upload of `length` bytes by alice, begun over a raw connection: only its head is sent. */
export async function rawUpload(cluster: TestCluster, chatId: string, length: number) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: cluster.main.service.port });
  const head = `POST /v1/media?chat_id=${chatId} HTTP/1.1\r\nHost: x\r\n` +
    `Authorization: Bearer ${await cluster.token("alice")}\r\n` +
    `Content-Length: ${length}\r\n\r\n`;
  await conn.write(new TextEncoder().encode(head));
  return {
    conn,
    /** The server's answer, as text (within 10 s). */
    async answer(): Promise<string> {
      const answer = new Uint8Array(4096);
      const read = await within(conn.read(answer), 10_000, "the upload's answer");
      return new TextDecoder().decode(answer.subarray(0, read ?? 0));
    },
    [Symbol.dispose]: () => {
      try {
        conn.close();
      } catch { /* closed already */ }
    },
  };
}

/** Rows of the PostgreSQL media store and catalogue, to see what was (not) stored. */
export async function stored(cluster: TestCluster) {
  const sql = postgres(cluster.databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const [counts] = await sql<Array<{ blobs: number; chunks: number; uploads: number }>>`
      select (select count(*) from media_blobs)::int as blobs,
             (select count(distinct blob_key) from media_chunks)::int as chunks,
             (select count(*) from media)::int as uploads`;
    return counts!;
  } finally {
    await sql.end();
  }
}

/** A NATS object store bucket name of the test's own, destroyed with everything in it. */
export function natsBucket(): { name: string; objects(): Promise<string[]> } & AsyncDisposable {
  const name = `media_t${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  return {
    name,
    /**
     * Names of the objects in the bucket, and `chunks of no object: <nuid>` for chunks that no
     * object points at (bytes kept that no one can read), sorted.
     */
    async objects() {
      const nc = await connect({ servers: TEST_NATS_URL });
      try {
        const store = await new Objm(nc).open(name);
        const live = (await store.list()).filter((info) => !info.deleted);
        const owned = new Set(live.map((info) => info.nuid));
        const chunks = `$O.${name}.C.`;
        const stream = await (await jetstreamManager(nc)).streams.info(`OBJ_${name}`, {
          subjects_filter: `${chunks}>`,
        });
        const orphans = Object.keys(stream.state.subjects ?? {})
          .map((subject) => subject.slice(chunks.length))
          .filter((nuid) => !owned.has(nuid));
        return [
          ...live.map((info) => info.name),
          ...orphans.map((nuid) => `chunks of no object: ${nuid}`),
        ].sort();
      } finally {
        await nc.close();
      }
    },
    async [Symbol.asyncDispose]() {
      const nc = await connect({ servers: TEST_NATS_URL });
      try {
        const jsm = await jetstreamManager(nc);
        await jsm.streams.delete(`OBJ_${name}`).catch(() => false);
      } finally {
        await nc.close();
      }
    },
  };
}
