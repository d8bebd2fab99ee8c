import { DeliverPolicy, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { Base64UrlPaddedCodec } from "@nats-io/obj";
import { z } from "zod";

/** The NATS media store writes an object under this prefix and an id, then renames it. */
export const UPLOAD_PREFIX = "upload.";
export const isUpload = (name: string) => name.startsWith(UPLOAD_PREFIX);

/** The subjects of an object store bucket: an object's metadata, and its chunks. */
export function objectSubjects(bucket: string) {
  return {
    metaSubject: (name: string) => `$O.${bucket}.M.${Base64UrlPaddedCodec.encode(name)}`,
    chunkSubject: (nuid: string) => `$O.${bucket}.C.${nuid}`,
  };
}

/** What the sweep reads of an object's metadata (the object store's ObjectInfo). */
const objectMeta = z.object({
  name: z.string(),
  nuid: z.string(),
  deleted: z.boolean().optional(),
});
/**
 * With `stored`: when NATS stored the metadata (ms), on the server's clock. Not the object's
 * `mtime`, which the client that wrote it sets from its own clock (an instance's, maybe off).
 */
type ObjectMeta = z.infer<typeof objectMeta> & { stored: number };

/** The bucket of a NATS media store, and its way to delete an object and its name. */
export interface SweptBucket {
  bucket: string;
  stream: string;
  js: JetStreamClient;
  manager: JetStreamManager;
  discard(name: string): Promise<void>;
}

/**
 * Deletes what the uploads of killed instances left in the bucket, last written `afterMs` ago
 * or more (this instance's clock against NATS's timestamps: `afterMs` is hours, a skew of
 * seconds does not matter): chunks no object points at (killed while writing) and objects still
 * under their upload name (killed before the rename). An upload name left beside the file it
 * was renamed to (killed before the name was removed) goes alone: the chunks are the file's.
 * Resolves with how many uploads it deleted.
 */
export async function sweepNatsUploads(swept: SweptBucket, afterMs: number): Promise<number> {
  const { stream, manager } = swept;
  const { metaSubject, chunkSubject } = objectSubjects(swept.bucket);
  const deadBefore = Date.now() - afterMs;
  const objects = (await everyObject(swept)).filter((info) => !info.deleted);
  const files = new Set(objects.filter((info) => !isUpload(info.name)).map((info) => info.nuid));
  const uploads = new Map(
    objects.filter((info) => isUpload(info.name)).map((info) => [info.nuid, info]),
  );
  // listed after the objects: the chunks of an upload that finished meanwhile are recent
  const chunksOf = chunkSubject("");
  const { state } = await manager.streams.info(stream, { subjects_filter: `${chunksOf}>` });
  let deleted = 0;
  for (const subject of Object.keys(state.subjects ?? {})) {
    const nuid = subject.slice(chunksOf.length);
    if (files.has(nuid)) continue;
    const last = await manager.direct.getMessage(stream, { last_by_subj: subject });
    const upload = uploads.get(nuid);
    if (!last || last.time.getTime() > deadBefore) continue;
    if (upload && upload.stored > deadBefore) continue;
    if (upload) await swept.discard(upload.name);
    else await manager.streams.purge(stream, { filter: subject });
    deleted++;
  }
  for (const upload of uploads.values()) {
    if (!files.has(upload.nuid) || upload.stored > deadBefore) continue;
    await manager.streams.purge(stream, { filter: metaSubject(upload.name) });
    deleted++;
  }
  return deleted;
}

/**
 * The metadata of every object in the bucket, read to the last: the object store's own list()
 * ends at the first idle heartbeat, and a file it missed would have its chunks taken for an
 * upload's leftovers. Throws rather than answer short, so that nothing is swept then.
 */
async function everyObject(swept: SweptBucket): Promise<ObjectMeta[]> {
  const objects: ObjectMeta[] = [];
  for await (const batch of objectBatches(swept, { cut: "throw", waitMs: 5_000 })) {
    objects.push(...batch);
  }
  return objects;
}

/**
 * The metadata of every object in the bucket (deleted ones too), a fetch of up to 1,000 at a
 * time, each waited for up to `waitMs` (1,000 at least). When they stop coming before the one
 * the server counted as last (objects deleted meanwhile, whose metadata went), `cut: "throw"`
 * throws, and `"end"` ends there: for a caller to whom an object missed is one left for later.
 */
export async function* objectBatches(
  { bucket, stream, js, manager }: Omit<SweptBucket, "discard">,
  options: { cut: "throw" | "end"; waitMs: number },
): AsyncGenerator<ObjectMeta[]> {
  const metas = `$O.${bucket}.M.>`;
  const { state } = await manager.streams.info(stream, { subjects_filter: metas });
  if (Object.keys(state.subjects ?? {}).length === 0) return;
  const consumer = await js.consumers.get(stream, {
    filter_subjects: metas,
    deliver_policy: DeliverPolicy.LastPerSubject,
  });
  for (;;) {
    const objects: ObjectMeta[] = [];
    let pending: number | undefined;
    const fetched = await consumer.fetch({ max_messages: 1_000, expires: options.waitMs });
    for await (const message of fetched) {
      objects.push({ ...objectMeta.parse(message.json()), stored: message.time.getTime() });
      pending = message.info.pending;
      if (pending === 0) break;
    }
    if (pending === undefined) {
      if (options.cut === "end") return;
      throw new Error(`the objects of ${bucket} stopped coming`);
    }
    yield objects;
    if (pending === 0) return;
  }
}
