import { z } from "zod";
import { toProtoMessage } from "../convert.ts";
import {
  defined,
  nextPageToken,
  optionalTimestamp,
  optionalUserId,
  optionalUuid,
  pageSize,
  pageToken,
  parseRequest,
  readCursor,
  text,
  timeCursor,
  uuid,
} from "../requests.ts";
import type { HandlerDeps } from "./deps.ts";

const getMessageRequest = z.object({ message_id: uuid });
const listMessagesRequest = z.object({
  chat_id: uuid,
  include_deleted: z.boolean(),
  page_size: pageSize,
  page_token: pageToken,
});
const searchMessagesRequest = z
  .object({
    query: text.trim().min(1, "is required").max(500, "is too long"),
    chat_id: optionalUuid,
    sender_id: optionalUserId,
    created_after: optionalTimestamp,
    created_before: optionalTimestamp,
    include_deleted: z.boolean(),
    page_size: pageSize,
    page_token: pageToken,
  })
  .refine(
    ({ created_after, created_before }) =>
      created_after === undefined || created_before === undefined ||
      created_after < created_before,
    { path: ["created_before"], message: "must be after created_after" },
  );

const seqCursor = z.number().int().positive();
const searchCursor = timeCursor.extend({ rank: z.number(), seq: z.number().int().positive() });

/** GetMessage, ListMessages, SearchMessages. */
export function createMessageHandlers({ service, queries, tokens }: HandlerDeps) {
  return {
    /** One message, deleted content included. NOT_FOUND when unknown. */
    async GetMessage(request: unknown) {
      const { message_id } = parseRequest(getMessageRequest, request);
      return toProtoMessage(await service.getMessage(message_id));
    },

    /** A chat's messages, newest first. NOT_FOUND when the chat is unknown. */
    async ListMessages(request: unknown) {
      const { page_size, page_token, ...filters } = parseRequest(listMessagesRequest, request);
      const paging = { method: "ListMessages", filters, token: page_token };
      const beforeSeq = readCursor(tokens, paging, seqCursor);
      // an unknown chat is NOT_FOUND, not an empty list
      await service.getChat(filters.chat_id);
      const page = await queries.listMessages({
        ...filters,
        ...defined({ before_seq: beforeSeq }),
        limit: page_size,
      });
      return {
        messages: page.items.map(toProtoMessage),
        next_page_token: nextPageToken(tokens, paging, page.next),
      };
    },

    /**
     * Full-text search, best match first. INVALID_ARGUMENT: no words, bad filters. Stopped in
     * the database once `signal` aborts (the client has gone).
     */
    async SearchMessages(request: unknown, signal: AbortSignal) {
      const { page_size, page_token, query, ...rest } = parseRequest(
        searchMessagesRequest,
        request,
      );
      const filters = { query, ...rest };
      const paging = { method: "SearchMessages", filters, token: page_token };
      const after = readCursor(tokens, paging, searchCursor);
      const page = await queries.searchMessages({
        ...defined({ ...rest, after }),
        text: query,
        include_deleted: rest.include_deleted,
        limit: page_size,
      }, { signal });
      return {
        messages: page.items.map(toProtoMessage),
        next_page_token: nextPageToken(tokens, paging, page.next),
      };
    },
  };
}
