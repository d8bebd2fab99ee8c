import { ChatError } from "./errors.ts";
import type { ChatMedia } from "./media.ts";
import { refusal, refuseBanned } from "./membership_operations.ts";
import type { ChatAsker, OwnChange } from "./ports.ts";
import type {
  Actor,
  ChatServiceDeps,
  MediaInput,
  PublishChat,
  PublishDeleted,
  SendMessageInput,
} from "./service.ts";
import {
  type Chat,
  type Message,
  otherSide,
  type Side,
  type StoredMessage,
  toClientMessage,
  UNREAD_PREVIEW_LIMIT,
} from "./types.ts";

/**
 * Refusals of a new message that a retry of one stored before may meet though the first send
 * passed: what it names may have changed since (a receiver removed from the vendor, an upload,
 * the media limits or types of a new deploy).
 */
const RETRY_MAY_OUTLIVE: ReadonlySet<ChatError["code"]> = new Set([
  "invalid_payload",
  "not_found",
  "payload_too_large",
  "unsupported_media",
]);

/**
 * How long a send whose message is stored waits for the receiver side's unread snapshot, when
 * the writer had none: the message is acknowledged without it (its unread push skipped, the
 * next one whole), and a store that takes longer is failing. Waited for to the store timeout,
 * a message stored just as the database stalled was answered a second store timeout later
 * (9.5 s), past what clients wait for a reply (10 s in client/).
 */
const UNREAD_SNAPSHOT_WAIT_MS = 1_000;

/**
 * What a participant does with messages: send, edit, delete, and say they are typing. Part of
 * the chat service (see createChatService), which lends it its ways to publish.
 */
export function createMessageOperations(
  deps: Pick<ChatServiceDeps, "store" | "events" | "now" | "onError"> & {
    chatMedia: ChatMedia;
    publishChat: PublishChat;
    publishDeleted: PublishDeleted;
  },
) {
  const { store, events, chatMedia, publishChat, publishDeleted, now } = deps;

  /** A stored message's client JSON, made once: the unread preview repeats the same ones. */
  const clientJson = new WeakMap<StoredMessage, string>();
  function jsonOf(stored: StoredMessage): string {
    let text = clientJson.get(stored);
    if (text === undefined) {
      text = JSON.stringify(toClientMessage(stored));
      clientJson.set(stored, text);
    }
    return text;
  }

  /**
   * The message a change of the actor's own message left, or its refusal thrown. The store
   * checks, in the change's own statement, that the actor may still write in the chat: a ban or
   * a removal from the vendor whose event has not reached the socket yet (on its way, or lost
   * until a sweep finds it) refuses the change `forbidden`, as the store refuses a send as it
   * writes, rather than letting a banned or removed user rewrite or take back what they sent.
   * Errors: forbidden, not_found, failed_precondition (an edit of media).
   */
  function ownChanged(change: OwnChange): Exclude<OwnChange, { refused: unknown }> {
    if (!("refused" in change)) return change;
    switch (change.refused) {
      case "banned":
      case "outsider":
        throw refusal(change.refused);
      case "unknown":
        // another chat's message id reads as unknown, and so does a tombstone, but to its
        // sender deleting it again
        throw new ChatError("not_found", "no such message in this chat");
      case "not_sender":
        throw new ChatError("forbidden", "only the sender may change a message");
      case "not_text":
        throw new ChatError("failed_precondition", "only text messages can be edited", {
          issues: [{ path: "message_id", message: "only text messages can be edited" }],
        });
    }
  }

  async function receiverSideOk(chat: Chat, senderSide: Side, receiverId: string) {
    if (senderSide === "vendor") return receiverId === chat.user_id;
    if (receiverId === chat.vendor_id) return true;
    return receiverId !== chat.user_id && await store.isVendorMember(chat.vendor_id, receiverId);
  }

  /**
   * The media id a new message carries, once its receiver and media pass the rules; throws
   * their refusal (see sendMessage).
   */
  async function checkedSend(actor: Actor, input: SendMessageInput): Promise<string | null> {
    const { chat, side } = actor.membership;
    if (!(await receiverSideOk(chat, side, input.receiver_id))) {
      throw new ChatError("invalid_payload", "receiver is not on the other side of this chat", {
        issues: [{ path: "receiver_id", message: "must be on the other side of this chat" }],
      });
    }
    return await chatMedia.forMessage(actor, input.media_type, input.media);
  }

  /**
   * The message the actor's send with this client_id stored, if any; a banned sender is refused
   * (forbidden) whatever was stored. Looked up by the actor's own chat and user id, so another
   * sender or chat learns nothing.
   */
  async function storedBefore(
    actor: Actor,
    clientId: string,
    options: { afterWritesUnderWay?: boolean } = {},
  ) {
    const earlier = await store.messageByClientId(
      actor.membership.chat.id,
      actor.user_id,
      clientId,
      options,
    );
    // the store sees a ban only as it writes: a banned sender is told so here
    if (earlier) await refuseBanned(store, actor.user_id);
    return earlier;
  }

  /**
   * The message a refused send's client_id stored before, if any: a retry whose first answer was
   * lost is answered with it, though its receiver (say, an agent since removed) or its media
   * would be refused now. Only the refusals of the message itself; and only after a refusal, so
   * a first send costs no query. A first send still being written on another instance is waited
   * for: else the retry would be refused though that one is stored a moment later.
   */
  async function storedBeforeRefusal(actor: Actor, clientId: string | null, refusal: unknown) {
    if (clientId === null || !(refusal instanceof ChatError)) return null;
    if (!RETRY_MAY_OUTLIVE.has(refusal.code)) return null;
    return await storedBefore(actor, clientId, { afterWritesUnderWay: true });
  }

  /**
   * A retry's base64 is stored as a media row of its own when the store finds the client_id only
   * as it writes (the first send was still being written on another instance when sentBefore
   * looked): that row, which no message will carry, is deleted. Its bytes, stored once by
   * content, are the first send's when the file is the same. A failure is reported, not
   * answered: the message is stored.
   */
  async function discardRetriedMedia(
    input: MediaInput | null,
    mediaId: string | null,
    stored: StoredMessage,
  ) {
    if (input === null || !("base64" in input) || mediaId === null) return;
    if (mediaId === stored.media_id) return;
    await store.deleteUnsentMedia(mediaId).catch((error) => {
      deps.onError?.(error, "media of a repeated client_id");
    });
  }

  /**
   * The sends with a client_id under way on this instance, by chat, sender and client_id. A
   * retry that comes while its first send is still being checked, ingested or written waits for
   * it, then meets what it stored: run beside it, the retry found nothing stored yet, and was
   * refused for what changed meanwhile (its receiver removed from the vendor, say) though the
   * first was stored. A send under way on another instance is the store's to wait for.
   */
  const sendsUnderWay = new Map<string, Promise<unknown>>();
  const sendKey = (actor: Actor, clientId: string) =>
    `${actor.membership.chat.id}\u0000${actor.user_id}\u0000${clientId}`;

  /** `send`, after the send of the same client_id under way on this instance has settled. */
  async function afterSendUnderWay<T>(
    actor: Actor,
    clientId: string | null,
    send: () => Promise<T>,
  ): Promise<T> {
    if (clientId === null) return await send();
    const key = sendKey(actor, clientId);
    const before = sendsUnderWay.get(key);
    const sending = before ? before.then(() => send(), () => send()) : send();
    sendsUnderWay.set(key, sending);
    try {
      return await sending;
    } finally {
      if (sendsUnderWay.get(key) === sending) sendsUnderWay.delete(key);
    }
  }

  /** The receiver side's unread after a send, or undefined past UNREAD_SNAPSHOT_WAIT_MS. */
  async function unreadAfterSend(chatId: string, side: Side) {
    const read = store.unread(chatId, side, UNREAD_PREVIEW_LIMIT).catch((error) => {
      deps.onError?.(error, "unread snapshot after a send");
      return undefined;
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const givenUp = new Promise<undefined>((resolve) => {
      timer = setTimeout(resolve, UNREAD_SNAPSHOT_WAIT_MS, undefined);
    });
    try {
      return await Promise.race([read, givenUp]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The send itself (see sendMessage), once no other of its client_id is under way here. */
  async function storeAndPublish(
    actor: Actor,
    input: SendMessageInput,
  ): Promise<{ message: Message; duplicate: boolean }> {
    const { chat, side } = actor.membership;
    let mediaId: string | null;
    try {
      mediaId = await checkedSend(actor, input);
    } catch (refusal) {
      const earlier = await storedBeforeRefusal(actor, input.client_id, refusal);
      if (earlier) return { message: toClientMessage(earlier), duplicate: true };
      throw refusal;
    }
    const { message: stored, duplicate, receiver_unread } = await store.insertMessage({
      chat_id: chat.id,
      sender_id: actor.user_id,
      sender_side: side,
      receiver_id: input.receiver_id,
      media_type: input.media_type,
      content: input.content,
      media_id: mediaId,
      client_id: input.client_id,
    });
    const message = toClientMessage(stored);
    if (duplicate) {
      await discardRetriedMedia(input.media, mediaId, stored);
      return { message, duplicate };
    }
    const receiverSide = otherSide(side);
    // The message is stored: it is broadcast and acknowledged whatever comes of this read,
    // else a retry with its client_id would be a duplicate that no one was ever told of.
    // Without the snapshot, this message's unread push is skipped; the next one is whole.
    const unread = receiver_unread ?? await unreadAfterSend(chat.id, receiverSide);
    events.publishChat(chat.id, {
      chat: { user_id: chat.user_id, vendor_id: chat.vendor_id },
      audience: { to: "all" },
      frame: { type: "chat_message", chat_id: chat.id, message },
      sent_at: now(),
      ...(unread && {
        unread: {
          side: receiverSide,
          count: unread.count,
          seqs: unread.messages.map((unreadMessage) => unreadMessage.seq),
        },
      }),
    }, {
      frame: `{"type":"chat_message","chat_id":${JSON.stringify(chat.id)},"message":${
        jsonOf(stored)
      }}`,
      ...(unread && { unreadMessages: unread.messages.map(jsonOf) }),
    });
    return { message, duplicate };
  }

  return {
    /**
     * Stores a message, then tells every participant and pushes the receiver side's unread.
     * A repeated `client_id` returns the first message and tells no one again, even when a
     * new send would now be refused for its receiver or media (not when the sender is banned);
     * one sent again while the first is under way on this instance waits for it.
     * Media is checked and stored first (see createChatMedia's forMessage).
     * Errors: invalid_payload (receiver not on the other side, broken base64), forbidden
     * (banned), not_found (media_id), payload_too_large, unsupported_media, unavailable.
     */
    sendMessage(
      actor: Actor,
      input: SendMessageInput,
    ): Promise<{ message: Message; duplicate: boolean }> {
      return afterSendUnderWay(actor, input.client_id, () => storeAndPublish(actor, input));
    },

    /**
     * The message the actor's send with this client_id stored, once the send of it under way on
     * this instance (if any) has settled; null when none. Asked before a base64 file takes an
     * upload place and is ingested, so that a retry whose first answer was lost costs no upload
     * and is not refused for want of a place. Errors: forbidden (banned, when one is stored).
     */
    async sentBefore(actor: Actor, clientId: string): Promise<Message | null> {
      await sendsUnderWay.get(sendKey(actor, clientId))?.catch(() => {});
      const earlier = await storedBefore(actor, clientId);
      return earlier && toClientMessage(earlier);
    },

    /**
     * Tombstones the asker's own message of their chat. One deleted already (a retry whose answer
     * was lost, or a moderator's deletion) is done, and tells no one, as a read mark made again.
     * The store checks membership and tells whom to tell, so a chat the socket does not hold yet
     * costs no read besides (see ChatStore.deleteOwnMessage).
     * Errors: not_found, forbidden (also banned, gone, or not in the chat).
     */
    async deleteMessage(asker: ChatAsker, messageId: string): Promise<void> {
      const deleted = ownChanged(await store.deleteOwnMessage(asker, messageId));
      if (deleted.changed) publishDeleted(deleted.chat, deleted.message);
    },

    /**
     * Edits the asker's own text message of their chat, checked and told as deleteMessage. An
     * edit to the text it has (a retry whose answer was lost, a save without a change) is
     * answered with the message as it is, and tells no one.
     * Errors: not_found, forbidden (also banned, or not in the chat), failed_precondition.
     */
    async editMessage(asker: ChatAsker, messageId: string, content: string): Promise<Message> {
      const edited = ownChanged(await store.editOwnMessage(asker, messageId, content));
      const client = toClientMessage(edited.message);
      if (!edited.changed) return client;
      publishChat(edited.chat, { to: "all" }, {
        type: "message_edited",
        chat_id: edited.chat.id,
        message: client,
      });
      return client;
    },

    /**
     * Tells the other participants' sockets; never stored. `socket` is the id of the socket
     * that said it, for the user's other sockets.
     */
    typing(actor: Actor, isTyping: boolean, socket: string): void {
      const { chat } = actor.membership;
      publishChat(chat, { to: "others", user_id: actor.user_id, socket }, {
        type: "typing",
        chat_id: chat.id,
        user_id: actor.user_id,
        is_typing: isTyping,
      });
    },
  };
}
