import { ChatError } from "./errors.ts";
import type { ByteRange, ChatStore, MediaBody, MediaPort } from "./ports.ts";
import { refuseBanned } from "./membership_operations.ts";
import type { Actor, MediaInput } from "./service.ts";
import type { MediaKind, MediaRecord, MediaType } from "./types.ts";

/**
 * The refusal of a `media_id` that is not the sender's upload in this chat, or not to be seen
 * any more (a deleted message's, or its row deleted while the send was being written): the
 * same for all, so that ids cannot be probed.
 */
export function unknownMedia(): ChatError {
  return new ChatError("not_found", "no such media of yours in this chat", {
    issues: [{ path: "media_id", message: "unknown" }],
  });
}

/**
 * The chat's rules for files: who may send one where, which message may carry which upload,
 * and who may fetch one. The bytes are the media port's business.
 */
export function createChatMedia(deps: { store: ChatStore; media: MediaPort }) {
  const { store, media } = deps;

  async function record(actor: Actor, kind: MediaKind | null, body: MediaBody) {
    // a banned sender is refused before the file is read, not after it is stored
    await refuseBanned(store, actor.user_id);
    const blob = await media.ingest(body, kind);
    const created = await store.createMedia({
      chat_id: actor.membership.chat.id,
      uploader_id: actor.user_id,
      media_type: blob.kind,
      sha256: blob.sha256,
      mime_type: blob.mime,
      size: blob.size,
    });
    // The bytes may be a blob stored before, which the store found and reused, and which the
    // sweep of unsent media deleted before this row named it (once named, it keeps them: see
    // db/media_retention.ts). Then they are gone: this row goes too, and the sender retries.
    if (!(await media.exists(blob.sha256))) {
      await store.deleteUnsentMedia(created.id).catch(() => {});
      throw new ChatError("unavailable", "the file was removed while it was stored, send it again");
    }
    return created;
  }

  return {
    /**
     * The media id a new message carries: null for text; base64 is checked and stored now;
     * an uploaded id must be of this chat, by this sender, of this media_type, and still to be
     * seen (media whose messages were all deleted is unknown, `not_found`).
     * Errors: invalid_payload, payload_too_large, unsupported_media, not_found, forbidden.
     */
    async forMessage(
      actor: Actor,
      mediaType: MediaType,
      input: MediaInput | null,
    ): Promise<string | null> {
      if (mediaType === "text") {
        if (input === null) return null;
        throw new ChatError("invalid_payload", "a text message carries no media", {
          issues: [{ path: "media_type", message: "text carries content only" }],
        });
      }
      if (input === null) {
        throw new ChatError("invalid_payload", `a ${mediaType} message needs its file`, {
          issues: [{ path: mediaType, message: "required" }],
        });
      }
      if ("base64" in input) return (await record(actor, mediaType, input)).id;
      const entry = await store.getMedia(input.media_id);
      // another chat's or another sender's upload reads as unknown, and so does the media of a
      // deleted message: sent again, it would bring back the file the deletion took away
      if (
        !entry || entry.chat_id !== actor.membership.chat.id ||
        entry.uploader_id !== actor.user_id || entry.usage === "deleted"
      ) {
        throw unknownMedia();
      }
      if (entry.media_type !== mediaType) {
        throw new ChatError("invalid_payload", `the media was uploaded as ${entry.media_type}`, {
          issues: [{ path: "media_type", message: `must be ${entry.media_type} for this media` }],
        });
      }
      return entry.id;
    },

    /**
     * Stores an uploaded file for a later `send_message` with `media_id`. `kind` null: read
     * from the bytes. Errors: forbidden (banned), payload_too_large, unsupported_media,
     * unavailable.
     */
    upload(actor: Actor, kind: MediaKind | null, body: MediaBody): Promise<MediaRecord> {
      return record(actor, kind, body);
    },

    /**
     * The media if the user may fetch it: a participant of its chat, not banned, and it is on
     * a message that is not deleted (or on none yet, for its uploader). Errors: not_found
     * (for each of those, so ids cannot be probed).
     */
    async find(userId: string, mediaId: string): Promise<MediaRecord> {
      const entry = await store.getMedia(mediaId);
      const [membership, ban] = entry
        ? await Promise.all([store.membership(entry.chat_id, userId), store.activeBan(userId)])
        : [null, null];
      const visible = entry !== null && membership !== null && ban === null &&
        (entry.usage === "live" || (entry.usage === "unsent" && entry.uploader_id === userId));
      if (!visible) throw new ChatError("not_found", "no such media");
      const { usage: _usage, ...media } = entry;
      return media;
    },

    /** The bytes of media found by `find`, all or a range. Errors: not_found, unavailable. */
    open(found: MediaRecord, range: ByteRange | null): Promise<ReadableStream<Uint8Array>> {
      return media.open(found.sha256, range);
    },
  };
}

export type ChatMedia = ReturnType<typeof createChatMedia>;
