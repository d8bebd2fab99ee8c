import { ChatError } from "../chat/errors.ts";
import type { Delivery } from "../chat/feed.ts";
import type { Admission } from "../chat/membership_operations.ts";
import type { ChatService } from "../chat/service.ts";
import type { Membership } from "../chat/types.ts";
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
  /** Resolves once a round trip of the bus begun now came back (ChatFeed.roundTrip). */
  roundTrip: () => Promise<void>;
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
      const { unread, last_seq } = await service.unread(membership);
      // a user banned, disconnected or (a vendor's member) removed since the access was read,
      // on an instance whose publish of it is still on its way here, would be sent what was said
      // after that call answered: the reads go out once a round trip of the bus begun after them
      // has brought its event, which closes the socket
      await context.roundTrip();
      order.pageSent(membership.chat.id, page.items.at(-1)?.seq ?? 0);
      // the count was read after the page: it may count messages sent since, whose pushes are
      // older than it
      order.unreadSent(membership.chat.id, last_seq);
      send({
        type: "latest_chat",
        chat_id: membership.chat.id,
        messages: page.items,
        has_more: page.has_more,
      });
      send({ type: "unread_messages", ...unread });
    } else {
      if (!connection.admitted(await chats.takeInAllChats())) return;
      await chats.sendChatList(send);
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
 * Takes in chats created after the socket connected, all together: one read of the user's side
 * in them and one join of their feeds (SocketChats.takeInNewChats), however many an import
 * created at once. Messages sent to each before the socket followed it come from the store,
 * with the `unread_messages` their live sending would have pushed to this side; live events
 * wait until they are out, and the ones those already covered are dropped. When the store fails
 * after a chat was taken in, the chat stays taken in with its live events held, and the next
 * take-in of it (the socket's own retry, or the next telling of its creation) goes on from the
 * page after the last one sent, then sends them: an edit, deletion or read mark of a message sent
 * already comes in no page. Returns the chats to take in again so (letGoNewChats, once tried
 * enough). The chat list is owed again (sendNewChatsList).
 */
export async function adoptNewChats(
  chatIds: readonly string[],
  context: PagesContext,
): Promise<string[]> {
  const { connection, chats, order } = context;
  const told = [...new Set(chatIds)];
  const fresh = told.filter((chatId) => !chats.memberships.has(chatId));
  // taken in, and held since the store failed: on from the page after the last one sent
  const unfinished = told.flatMap((chatId) => {
    const membership = chats.memberships.get(chatId);
    return membership && order.holds(chatId) ? [membership] : [];
  });
  if (connection.closed || fresh.length + unfinished.length === 0) return [];
  // every page of each: what the feed follows from now on starts after the chat's last seq,
  // and no later message need come to show a gap past the first page
  const sentBefore = new Map(told.map((chatId) => [chatId, order.sentUpTo(chatId)]));
  for (const chatId of fresh) order.hold(chatId);
  try {
    let memberships: Membership[] = [];
    try {
      if (fresh.length > 0) memberships = await chats.takeInNewChats(fresh);
    } catch (error) {
      context.onError(error, "adopt new chat");
    }
    const unsent: string[] = [];
    for (const membership of [...unfinished, ...memberships]) {
      if (await sendNewChat(membership, sentBefore.get(membership.chat.id), context)) {
        unsent.push(membership.chat.id);
      }
    }
    return unsent;
  } finally {
    // a take-in that failed, or found the chat not the user's, drops what was held
    for (const chatId of fresh) if (!chats.memberships.has(chatId)) order.release(chatId);
  }
}

/**
 * Lets go of chats whose take-in the store failed every time it was tried (adoptNewChats), and of
 * the live events held for them: the next telling of their creation (the feed's sweep) takes
 * them in anew, from the page after the last one sent.
 */
export function letGoNewChats(chatIds: readonly string[], context: PagesContext): void {
  for (const chatId of chatIds) {
    context.chats.memberships.delete(chatId);
    context.order.release(chatId);
  }
}

/**
 * The history of a new chat taken in (adoptNewChats), from the page after `sentBefore` (none
 * when the feed found the chat empty), then the live events held meanwhile. True when the store
 * failed: the chat stays held, with the pages sent so far recorded.
 */
async function sendNewChat(
  membership: Membership,
  sentBefore: number | undefined,
  context: PagesContext,
): Promise<boolean> {
  const { connection, service, chats, order, send } = context;
  const { chat, side } = membership;
  const chatId = chat.id;
  let sentUpTo = sentBefore ?? 0;
  try {
    // taken in again after a failure: what failed may have been the unread count owed for the
    // pages sent then, which no page sent now would call for (a snapshot: one more is harmless)
    let toThisSide = sentBefore !== undefined;
    // nothing more once the socket closed, or lost the chat (a membership revoked meanwhile)
    const stillSeen = () => !connection.closed && chats.memberships.has(chatId);
    // as the first page (sendFirstFrames), each read goes out once a round trip of the bus
    // begun after it has brought the ban, disconnect or removal published before it: undefined
    // when that closed the socket or took the chat
    const seenPastRoundTrip = async <T>(read: Promise<T>): Promise<T | undefined> => {
      const value = await read;
      await context.roundTrip();
      return stillSeen() ? value : undefined;
    };
    // a chat of no message when the feed began to follow it (an import's): its messages all
    // come from the feed, and there is no history to read
    const stored = sentBefore !== undefined || chats.deliveredUpTo(chatId) !== 0;
    for (let hasMore = stored; hasMore && stillSeen();) {
      const page = await seenPastRoundTrip(
        service.history(chat, { limit: 100, after_seq: sentUpTo }),
      );
      if (!page) break;
      for (const message of page.items) {
        send({ type: "chat_message", chat_id: chatId, message });
        toThisSide ||= (message.sender_id === chat.user_id) !== (side === "customer");
      }
      sentUpTo = page.items.at(-1)?.seq ?? sentUpTo;
      hasMore = page.has_more;
    }
    const counted = toThisSide && stillSeen() &&
      await seenPastRoundTrip(service.unread(membership));
    if (counted) send({ type: "unread_messages", ...counted.unread });
    order.pageSent(chatId, sentUpTo);
    // read after the pages, as a first page's count (sendFirstFrames)
    if (counted) order.unreadSent(chatId, counted.last_seq);
    for (const delivery of order.release(chatId)) connection.deliver(delivery);
    return false;
  } catch (error) {
    context.onError(error, "adopt new chat");
    if (sentUpTo > 0) order.pageSent(chatId, sentUpTo);
    return true;
  }
}

/**
 * The chat list owed for the new chats taken in (adoptNewChats), sent again with them: an empty
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
