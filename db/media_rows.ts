import type { Sql } from "postgres";
import type { NewMedia } from "../chat/ports.ts";
import type { MediaEntry, MediaKind, MediaRecord } from "../chat/types.ts";
import { errorCode } from "./errors.ts";
import { iso } from "./rows.ts";

/** The media queries of the chat store: rows of `media`, with their blob's type and size. */

interface MediaRow {
  id: string;
  chat_id: string;
  uploader_id: string;
  media_type: MediaKind;
  sha256: string;
  mime_type: string;
  /** bigint arrives as text */
  size: string;
  created_at: Date;
}

function toMediaRecord(row: MediaRow): MediaRecord {
  return {
    id: row.id,
    chat_id: row.chat_id,
    uploader_id: row.uploader_id,
    media_type: row.media_type,
    sha256: row.sha256,
    mime_type: row.mime_type,
    size: Number(row.size),
    created_at: iso(row.created_at),
  };
}

/**
 * Records a file sent in a chat; its blob joins the catalogue the first time it is seen (or
 * again, after the sweep of unsent media deleted it).
 */
export async function insertMedia(sql: Sql, media: NewMedia): Promise<MediaRecord> {
  try {
    return await insertMediaRow(sql, media);
  } catch (error) {
    // the blob's catalogue row was found, then deleted by the sweep before this row named it
    // (db/media_retention.ts): once more writes it anew
    if (errorCode(error) !== "23503") throw error;
    return await insertMediaRow(sql, media);
  }
}

async function insertMediaRow(sql: Sql, media: NewMedia): Promise<MediaRecord> {
  const [row] = await sql<MediaRow[]>`
    with blob as (
      insert into media_blobs (sha256, mime_type, size)
      values (decode(${media.sha256}, 'hex'), ${media.mime_type}, ${media.size})
      on conflict (sha256) do nothing
    )
    insert into media (chat_id, uploader_id, media_type, sha256)
    values (${media.chat_id}, ${media.uploader_id}, ${media.media_type},
            decode(${media.sha256}, 'hex'))
    returning id, chat_id, uploader_id, media_type, encode(sha256, 'hex') as sha256,
              ${media.mime_type}::text as mime_type, ${media.size}::bigint as size, created_at`;
  return toMediaRecord(row!);
}

/** A media row, its blob's type and size, and whether messages carry it. */
export async function selectMedia(sql: Sql, mediaId: string): Promise<MediaEntry | null> {
  const [row] = await sql<Array<MediaRow & { usage: MediaEntry["usage"] }>>`
    select m.id, m.chat_id, m.uploader_id, m.media_type, encode(m.sha256, 'hex') as sha256,
           b.mime_type, b.size, m.created_at,
           case when exists (select 1 from messages
                             where media_id = m.id and deleted_at is null) then 'live'
                when exists (select 1 from messages where media_id = m.id) then 'deleted'
                else 'unsent' end as usage
    from media m join media_blobs b on b.sha256 = m.sha256
    where m.id = ${mediaId}`;
  return row ? { ...toMediaRecord(row), usage: row.usage } : null;
}

/**
 * Deletes a media row no message carries; its blob stays, as other rows may name it, and is
 * noted for the sweep of unsent media to look at (db/media_retention.ts).
 */
export async function deleteUnsentMedia(sql: Sql, mediaId: string): Promise<boolean> {
  const [{ deleted }] = await sql<[{ deleted: number }]>`
    with gone as (
      delete from media m where m.id = ${mediaId}
        and not exists (select 1 from messages where media_id = m.id)
      returning sha256
    ), noted as (
      insert into media_sweep_blobs select sha256 from gone on conflict do nothing
    )
    select count(*)::int as deleted from gone`;
  return deleted > 0;
}
