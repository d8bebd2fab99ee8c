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
