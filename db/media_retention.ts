import type { Sql } from "postgres";
import { transaction } from "./transactions.ts";

/**
 * The queries of the sweep of unsent media (media/unsent_media_sweep.ts). Each deletion holds
 * the rows it deletes locked, so that what uses them meanwhile waits for it and then finds them
 * gone, never half gone: a message naming a media row (the foreign key from `messages` takes a
 * key-share lock on it, which `for update` excludes), a media row naming a blob (likewise from
 * `media` on `media_blobs`). Rows locked by such a writer are skipped, not waited for; so are
 * those another instance's sweep holds.
 */

/**
 * Deletes up to `limit` media rows created before `before` that no message carries (a deleted
 * message still does); resolves with how many. A send naming one of them waits for this
 * transaction and then fails on the foreign key (db/postgres_store.ts answers it as an unknown
 * media id).
 */
export async function deleteExpiredUnsentMedia(
  sql: Sql,
  options: { before: Date; limit: number },
): Promise<number> {
  return await transaction(sql, async (tx) => {
    const locked = await tx<Array<{ id: string }>>`
      select id from media m where created_at < ${options.before}
        and not exists (select 1 from messages where media_id = m.id)
      limit ${options.limit} for update skip locked`;
    if (locked.length === 0) return 0;
    // asked again now that no new message can name them: one sent between the statement
    // above's snapshot and its lock is seen here, and keeps its media
    const deleted = await tx`
      delete from media m where id = any(${locked.map((row) => row.id)}::uuid[])
        and not exists (select 1 from messages where media_id = m.id)`;
    return deleted.count;
  });
}

/** Up to `limit` blobs no media row names, by SHA-256 hex in order, after `after` if given. */
export async function unnamedBlobs(
  sql: Sql,
  options: { after: string | null; limit: number },
): Promise<string[]> {
  const rows = await sql<Array<{ sha256: string }>>`
    select encode(sha256, 'hex') as sha256 from media_blobs b
    where not exists (select 1 from media m where m.sha256 = b.sha256)
      ${options.after === null ? sql`` : sql`and sha256 > decode(${options.after}, 'hex')`}
    order by b.sha256 limit ${options.limit}`;
  return rows.map((row) => row.sha256);
}

/**
 * Deletes the catalogue row of a blob no media row names, and then, before that commits, its
 * bytes (`deleteBytes`); resolves with whether it did. An upload that reused the bytes and is
 * naming the blob meanwhile either holds the row (skipped) or waits for this transaction and
 * then writes the row anew (see insertMedia), finding the bytes gone. When `deleteBytes`
 * fails, the row stays for the next sweep.
 */
export async function deleteUnnamedBlob(
  sql: Sql,
  sha256: string,
  deleteBytes: () => Promise<void>,
): Promise<boolean> {
  return await transaction(sql, async (tx) => {
    const [locked] = await tx`
      select 1 from media_blobs where sha256 = decode(${sha256}, 'hex') for update skip locked`;
    if (!locked) return false;
    const deleted = await tx`
      delete from media_blobs b where sha256 = decode(${sha256}, 'hex')
        and not exists (select 1 from media m where m.sha256 = b.sha256)`;
    if (deleted.count === 0) return false;
    await deleteBytes();
    return true;
  });
}

/** A file's name in a media store: its SHA-256 in hex. */
const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * Of the files `sha256s`, deletes the bytes (from `bytes`, a media store) of each that no
 * catalogue row names; resolves with how many. Meant for files stored long enough ago that the upload which stored
 * one has written its catalogue row, if ever it will (the instance died, or the insert failed).
 *
 * An upload may meanwhile have found such bytes stored and be about to name them (insertMedia).
 * So the catalogue rows are asked for first without a lock (most pages have none missing), then
 * written for the files found without, as placeholders only this transaction sees: an insert of
 * the same row by an upload waits for it (the primary key), so the bytes of each file written
 * here go before any upload can name them, and that upload then finds them gone and is refused
 * to send them again (chat/media.ts); a file another transaction catalogued first is skipped.
 * The placeholders are deleted before the commit. When the store fails, nothing is deleted from
 * the catalogue and the next sweep tries again.
 */
export async function deleteUncataloguedFiles(
  sql: Sql,
  sha256s: string[],
  bytes: { exists(sha256: string): Promise<boolean>; delete(sha256: string): Promise<void> },
): Promise<number> {
  // in order: sweeps of several instances hold the same rows in the same order, and never
  // wait for each other in a circle
  const files = sha256s.filter((sha256) => SHA256_HEX.test(sha256)).sort();
  if (files.length === 0) return 0;
  const missing = await sql<Array<{ sha256: string }>>`
    select sha256 from unnest(${files}::text[]) as file (sha256)
    where not exists (select 1 from media_blobs where sha256 = decode(file.sha256, 'hex'))`;
  if (missing.length === 0) return 0;
  return await transaction(sql, async (tx) => {
    const held = await tx<Array<{ sha256: string }>>`
      insert into media_blobs (sha256, mime_type, size)
      select decode(sha256, 'hex'), '', 0 from unnest(${missing.map((row) => row.sha256)}::text[])
        as file (sha256) order by sha256
      on conflict (sha256) do nothing
      returning encode(sha256, 'hex') as sha256`;
    if (held.length === 0) return 0;
    const heldFiles = held.map((row) => row.sha256);
    let deleted = 0;
    for (const sha256 of heldFiles) {
      // another instance's sweep may have held it first, and deleted it meanwhile
      if (!(await bytes.exists(sha256))) continue;
      await bytes.delete(sha256);
      deleted++;
    }
    await tx`delete from media_blobs where sha256 in (
               select decode(sha256, 'hex') from unnest(${heldFiles}::text[]) as file (sha256))`;
    return deleted;
  });
}
