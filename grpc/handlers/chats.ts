import { z } from "zod";
import { toProtoChat } from "../convert.ts";
import {
  defined,
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

const createChatRequest = z.object({ user_id: userId, vendor_id: userId });
const getChatRequest = z.object({ chat_id: uuid });
const listChatsRequest = z.object({
  user_id: optionalUserId,
  vendor_id: optionalUserId,
  page_size: pageSize,
  page_token: pageToken,
});

/** CreateChat, GetChat, ListChats. */
export function createChatHandlers({ service, queries, tokens }: HandlerDeps) {
  return {
    /** The pair's chat, created if new. INVALID_ARGUMENT: empty ids, or the same id twice. */
    async CreateChat(request: unknown) {
      const { user_id, vendor_id } = parseRequest(createChatRequest, request);
      return toProtoChat(await service.createChat(user_id, vendor_id));
    },

    /** One chat. NOT_FOUND when unknown. */
    async GetChat(request: unknown) {
      const { chat_id } = parseRequest(getChatRequest, request);
      return toProtoChat(await service.getChat(chat_id));
    },

    /** Chats, newest first, filtered by customer and/or vendor. */
    async ListChats(request: unknown) {
      const { page_size, page_token, ...filters } = parseRequest(listChatsRequest, request);
      const paging = { method: "ListChats", filters, token: page_token };
      const after = readCursor(tokens, paging, timeCursor);
      const page = await queries.listChats({ ...defined({ ...filters, after }), limit: page_size });
      return {
        chats: page.items.map(toProtoChat),
        next_page_token: nextPageToken(tokens, paging, page.next),
      };
    },
  };
}
