import { z } from "zod";
import { toProtoMessage } from "../convert.ts";
import {
  defined,
  nextPageToken,
  optionalTimestampValue,
  optionalUserId,
  optionalUuid,
  pageSize,
  pageToken,
  parseRequest,
  readCursor,
  text,
  timeCursor,
  timestampIso,
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
    created_after: optionalTimestampValue,
    created_before: optionalTimestampValue,
    include_deleted: z.boolean(),
    page_size: pageSize,
    page_token: pageToken,
  })
  // compared as given: rounded up to the millisecond, two instants within one would be equal
  .refine(
    ({ created_after: after, created_before: before }) =>
      after === null || before === null || after.seconds < before.seconds ||
      (after.seconds === before.seconds && after.nanos < before.nanos),
    { path: ["created_before"], message: "must be after created_after" },
  )
  // spread first, so the fields keep their order (page tokens sign them as JSON)
  .transform((request) => ({
    ...request,
    created_after: timestampIso(request.created_after),
    created_before: timestampIso(request.created_before),
  }));

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
