import { ChatError } from "../chat/errors.ts";
import type { Delivery } from "../chat/feed.ts";
import type { Admission } from "../chat/membership_operations.ts";
import type { ChatService } from "../chat/service.ts";
import type { ServerFrame } from "../protocol/mod.ts";
import type { DeliveryOrder } from "./delivery_order.ts";
import type { Endpoint } from "./endpoint.ts";
import { closeCodeFor } from "./errors.ts";
import type { SocketChats } from "./socket_chats.ts";

/** What sending pages from the store needs of the socket's connection. */
export interface PagesHost {
  readonly userId: string;
  readonly endpoint: Endpoint;
  readonly closed: boolean;
  close(code: number, reason: string): void;
  /** A live event, sent on in order with the pages (DeliveryOrder). */
  deliver(delivery: Delivery): void;
  /** The store let the socket in (see Connection.admitted); false when that closed it. */
  admitted(admission: Admission): boolean;
}

/** What sending one socket pages from the store works with. */
export interface PagesContext {
  connection: PagesHost;
  service: ChatService;
  /** The chats the socket sees, taken in before their pages are read. */
  chats: SocketChats;
  /** When the socket's live events go out, against the pages sent. */
  order: DeliveryOrder;
  /** A frame to this socket only. */
  send: (frame: ServerFrame) => void;
  onError: (error: unknown, context: string) => void;
}

/**
 * The socket's first frames: on `/v1/ws/chat/{id}` the chat's latest page and its unread
 * counts, on `/v1/ws/chats/` the chat list; then the live events held meanwhile go out. When
 * the store refuses or fails, the socket is closed with the error's close code.
 */
export async function sendFirstFrames(context: PagesContext): Promise<void> {
  const { connection, service, chats, order, send } = context;
  try {
    await chats.hearUser();
    if (connection.endpoint.kind === "chat") {
      const joined = await chats.takeInChat(connection.endpoint.chatId);
      if (!joined || !connection.admitted(joined)) return;
      const { membership } = joined;
      const page = await service.history(membership.chat, { limit: 50 });
      order.pageSent(membership.chat.id, page.items.at(-1)?.seq ?? 0);
      send({
        type: "latest_chat",
        chat_id: membership.chat.id,
        messages: page.items,
        has_more: page.has_more,
      });
      send({ type: "unread_messages", ...(await service.unread(membership)) });
    } else {
      if (!connection.admitted(await chats.takeInAllChats())) return;
      const page = await service.listChats(connection.userId);
      send({ type: "chats", chats: page.items, has_more: page.has_more });
    }
    for (const delivery of order.ready()) connection.deliver(delivery);
  } catch (error) {
    if (!(error instanceof ChatError) || error.code === "internal") {
      context.onError(error, "connect");
    }
    connection.close(closeCodeFor(error), error instanceof ChatError ? error.code : "internal");
  }
}

/**
 * Takes in a chat created after the socket connected. Messages sent to it before the
 * socket followed it come from the store, with the `unread_messages` their live sending
 * would have pushed to this side; live events wait until they are out, and the ones those
 * already covered are dropped. When the store fails after the chat was taken in, it is let go
 * again, so that the next telling of its creation (the socket's own retry, or the feed's sweep)
 * takes it in anew, from the page after the last one sent: the live events held meanwhile are
 * dropped, and what they carried comes in those pages. True when it was let go so. The chat
 * list is owed again (sendNewChatsList).
 */
export async function adoptNewChat(chatId: string, context: PagesContext): Promise<boolean> {
  const { connection, service, chats, order, send } = context;
  if (connection.closed || chats.memberships.has(chatId)) return false;
  order.hold(chatId);
  let takenIn = false;
  // every page of it: what the feed follows from now on starts after the chat's last seq,
  // and no later message need come to show a gap past the first page
  const sentBefore = order.sentUpTo(chatId);
  let sentUpTo = sentBefore ?? 0;
  try {
    const membership = await chats.takeInNewChat(chatId);
    if (!membership) return false;
    takenIn = true;
    const { chat, side } = membership;
    // taken in again after a failure: what failed may have been the unread count owed for the
    // pages sent then, which no page sent now would call for (a snapshot: one more is harmless)
    let toThisSide = sentBefore !== undefined;
    // nothing more once the socket closed, or lost the chat (a membership revoked meanwhile)
    const stillSeen = () => !connection.closed && chats.memberships.has(chatId);
    for (let hasMore = true; hasMore && stillSeen();) {
      const page = await service.history(chat, { limit: 100, after_seq: sentUpTo });
      for (const message of page.items) {
        send({ type: "chat_message", chat_id: chatId, message });
        toThisSide ||= (message.sender_id === chat.user_id) !== (side === "customer");
      }
      sentUpTo = page.items.at(-1)?.seq ?? sentUpTo;
      hasMore = page.has_more;
    }
    if (toThisSide && stillSeen()) {
      send({ type: "unread_messages", ...(await service.unread(membership)) });
    }
    order.pageSent(chatId, sentUpTo);
    for (const delivery of order.release(chatId)) connection.deliver(delivery);
  } catch (error) {
    context.onError(error, "adopt new chat");
    if (!takenIn) return false;
    chats.memberships.delete(chatId);
    if (sentUpTo > 0) order.pageSent(chatId, sentUpTo);
    return true;
  } finally {
    // a take-in that failed, or found the chat not the user's, drops what was held
    order.release(chatId);
  }
  return false;
}

/**
 * The chat list owed for the new chats taken in (adoptNewChat), sent again with them: an empty
 * chat shows in the client's list too. A failure is reported; the list stays owed to the next
 * change or refresh.
 */
export async function sendNewChatsList(context: PagesContext): Promise<void> {
  if (context.connection.closed) return;
  await context.chats.sendOwedChatList(context.send).catch((error) =>
    context.onError(error, "new chat's list")
  );
}

/**
 * The user was made a member of a vendor (SocketChats.adoptVendor): its chats are taken in and
 * the chat list is sent again. A failure is reported; the socket stays as it was.
 */
export async function adoptVendor(vendorId: string, context: PagesContext): Promise<void> {
  if (context.connection.closed) return;
  try {
    await context.chats.adoptVendor(vendorId, context.send);
  } catch (error) {
    context.onError(error, "adopt vendor chats");
  }
}

/**
 * The user lost chats (a vendor membership revoked, SocketChats.revoke): the chat list is sent
 * again without them. A failure is reported; the list stays owed to the next refresh.
 */
export async function resendChatList(context: PagesContext): Promise<void> {
  if (context.connection.closed) return;
  try {
    await context.chats.refreshChatList(context.send);
  } catch (error) {
    context.onError(error, "chat list after a revoked membership");
  }
}
