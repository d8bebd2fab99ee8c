import { jetstreamManager } from "@nats-io/jetstream";
import { Objm } from "@nats-io/obj";
import { connect } from "@nats-io/transport-node";
import { createHash } from "node:crypto";
import postgres from "postgres";
import type { TestCluster } from "./service.ts";
import { TEST_NATS_URL } from "./service.ts";

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
): Promise<{ status: number; json: any }> {
  const url = new URL(`${cluster.main.httpUrl}/v1/media`);
  for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
  const response = await fetch(url, {
    method: "POST",
    body,
    headers: { authorization: `Bearer ${await cluster.token(userId)}`, ...headers },
  });
  return { status: response.status, json: await response.json() };
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
    /** Names of the objects in the bucket, sorted. */
    async objects() {
      const nc = await connect({ servers: TEST_NATS_URL });
      try {
        const store = await new Objm(nc).open(name);
        return (await store.list()).filter((info) => !info.deleted).map((info) => info.name)
          .sort();
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
