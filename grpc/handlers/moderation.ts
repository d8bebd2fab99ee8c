import { z } from "zod";
import { toProtoBan, toProtoMessage, toProtoModerationAction } from "../convert.ts";
import {
  defined,
  moderator,
  nextPageToken,
  optionalUserId,
  pageSize,
  pageToken,
  parseRequest,
  readCursor,
  timeCursor,
  userId,
  uuid,
} from "../requests.ts";
import type { HandlerDeps } from "./deps.ts";

/** The longest ban with an end; longer ones are bans until lifted (duration 0). */
const MAX_BAN_SECONDS = 10 * 366 * 24 * 3600;

const deleteMessageRequest = z.object({ message_id: uuid, ...moderator });
const banUserRequest = z.object({
  user_id: userId,
  ...moderator,
  duration_seconds: z.number().int().min(0, "must not be negative").max(
    MAX_BAN_SECONDS,
    "must be at most ten years (0: until lifted)",
  ),
});
const userModerationRequest = z.object({ user_id: userId, ...moderator });
const listBansRequest = z.object({ page_size: pageSize, page_token: pageToken });
const listModerationActionsRequest = z.object({
  moderator_id: optionalUserId,
  target_user_id: optionalUserId,
  page_size: pageSize,
  page_token: pageToken,
});

/**
 * DeleteMessage, BanUser, UnbanUser, ListBans, DisconnectUser, ListModerationActions. Every
 * change goes through the domain service, which writes the audit log and tells every instance
 * over the bus.
 */
export function createModerationHandlers({ service, queries, tokens }: HandlerDeps) {
  return {
    /** Tombstones a message; live sockets get `message_deleted`. NOT_FOUND when unknown. */
    async DeleteMessage(request: unknown) {
      const { message_id, moderator_id, reason } = parseRequest(deleteMessageRequest, request);
      const message = await service.moderateDeleteMessage(message_id, { moderator_id, reason });
      return toProtoMessage(message);
    },

    /** Bans a user; their sockets close with 4403 on every instance. */
    async BanUser(request: unknown) {
      const { user_id, duration_seconds, moderator_id, reason } = parseRequest(
        banUserRequest,
        request,
      );
      const ban = await service.banUser(user_id, duration_seconds, { moderator_id, reason });
      return toProtoBan(ban);
    },

    /** Lifts a ban. NOT_FOUND when the user is not banned. */
    async UnbanUser(request: unknown) {
      const { user_id, moderator_id, reason } = parseRequest(userModerationRequest, request);
      await service.unbanUser(user_id, { moderator_id, reason });
      return {};
    },

    /** Bans in force, newest first. */
    async ListBans(request: unknown) {
      const { page_size, page_token } = parseRequest(listBansRequest, request);
      const paging = { method: "ListBans", filters: {}, token: page_token };
      const after = readCursor(tokens, paging, timeCursor);
      const page = await queries.listBans({ ...defined({ after }), limit: page_size });
      return {
        bans: page.items.map(toProtoBan),
        next_page_token: nextPageToken(tokens, paging, page.next),
      };
    },

    /** Closes the user's sockets on every instance with 4408. */
    async DisconnectUser(request: unknown) {
      const { user_id, moderator_id, reason } = parseRequest(userModerationRequest, request);
      await service.disconnectUser(user_id, { moderator_id, reason });
      return {};
    },

    /** The audit log, newest first. */
    async ListModerationActions(request: unknown) {
      const { page_size, page_token, ...filters } = parseRequest(
        listModerationActionsRequest,
        request,
      );
      const paging = { method: "ListModerationActions", filters, token: page_token };
      const after = readCursor(tokens, paging, timeCursor);
      const page = await queries.listModerationActions({
        ...defined({ ...filters, after }),
        limit: page_size,
      });
      return {
        actions: page.items.map(toProtoModerationAction),
        next_page_token: nextPageToken(tokens, paging, page.next),
      };
    },
  };
}
