import { ChatError } from "./errors.ts";
import type { UserEvent } from "./events.ts";
import type { ChatStore, ModerationRecord } from "./ports.ts";
import type { PublishDeleted } from "./service.ts";
import type { Ban, Chat, StoredMessage, VendorMember, VendorRole } from "./types.ts";

/** Who acts on the admin plane, and why (kept in the audit log). */
export interface ModeratorInput {
  moderator_id: string;
  reason: string;
}

/**
 * What only the admin plane does: chats made by the marketplace, vendor members, moderation.
 * Part of the chat service (see createChatService), which lends it the store and its ways to
 * publish.
 */
export function createAdminOperations(deps: {
  store: ChatStore;
  publishUser: (userId: string, event: UserEvent) => void;
  publishDeleted: PublishDeleted;
  /** Resolves once the bus has what was published (EventPublisher.published). */
  published: () => Promise<void>;
}) {
  const { store, publishUser, publishDeleted, published } = deps;
  return {
    /** The chat of the pair, created if new; participants' chat lists learn of it live. */
    async createChat(userId: string, vendorId: string): Promise<Chat> {
      if (userId === vendorId) {
        throw new ChatError("invalid_payload", "a chat needs two different people", {
          issues: [{ path: "vendor_id", message: "must differ from user_id" }],
        });
      }
      const { chat, created } = await store.createChat(userId, vendorId);
      if (created) {
        publishUser(userId, { type: "chat_created", chat });
        publishUser(vendorId, { type: "chat_created", chat });
      }
      return chat;
    },

    async getChat(chatId: string): Promise<Chat> {
      const chat = await store.getChat(chatId);
      if (!chat) throw new ChatError("not_found", "no such chat");
      return chat;
    },

    /** Adds (or re-roles) a member; their open chat-list sockets take in the vendor's chats. */
    async addVendorMember(
      vendorId: string,
      userId: string,
      role: VendorRole,
    ): Promise<VendorMember> {
      const member = await store.addVendorMember(vendorId, userId, role);
      publishUser(userId, { type: "membership_added", vendor_id: vendorId, user_id: userId });
      return member;
    },

    /**
     * Removes a member; their open sockets lose the vendor's chats at once. Answers once the bus
     * has the removal's event: an event sent after the answer reaches no instance ahead of it.
     */
    async removeVendorMember(vendorId: string, userId: string): Promise<void> {
      if (!(await store.removeVendorMember(vendorId, userId))) {
        throw new ChatError("not_found", "no such vendor member");
      }
      publishUser(userId, { type: "membership_revoked", vendor_id: vendorId, user_id: userId });
      await published();
    },

    listVendorMembers(vendorId: string): Promise<VendorMember[]> {
      return store.listVendorMembers(vendorId);
    },

    async getMessage(messageId: string): Promise<StoredMessage> {
      const message = await store.getMessage(messageId);
      if (!message) throw new ChatError("not_found", "no such message");
      return message;
    },

    /**
     * A moderator's delete: tombstone and audit in one statement (a message already deleted is
     * audited alone), then `message_deleted` to live sockets. The statement names the message's
     * sender (for the audit) and the chat's parties (to tell them): nothing is read before it,
     * and nothing after it that could fail once the deletion committed while no one was told.
     * Errors: not_found.
     */
    async moderateDeleteMessage(messageId: string, by: ModeratorInput): Promise<StoredMessage> {
      const deleted = await store.deleteMessage(messageId, by.moderator_id, {
        audit: { action: "delete_message", moderator_id: by.moderator_id, reason: by.reason },
      });
      if (!deleted) throw new ChatError("not_found", "no such message");
      if (deleted.changed) publishDeleted(deleted.chat, deleted.message);
      return deleted.message;
    },

    /**
     * Bans a user (0 seconds: until lifted) and closes their sockets everywhere. Answers once the
     * bus has the event, as removeVendorMember does.
     */
    async banUser(userId: string, durationSeconds: number, by: ModeratorInput): Promise<Ban> {
      // its end on the database's clock, which tells whether a ban is in force
      const ban = await store.ban({
        user_id: userId,
        moderator_id: by.moderator_id,
        reason: by.reason,
        duration_seconds: durationSeconds > 0 ? durationSeconds : null,
      }, { audit: userModeration("ban_user", userId, by) });
      publishUser(userId, { type: "disconnect", user_id: userId, reason: "banned" });
      await published();
      return ban;
    },

    /** Lifts a ban in force and audits it, in one transaction; NOT_FOUND without one. */
    async unbanUser(userId: string, by: ModeratorInput): Promise<void> {
      const lifted = await store.unban(userId, { audit: userModeration("unban_user", userId, by) });
      if (!lifted) throw new ChatError("not_found", "no ban for this user");
    },

    /**
     * Closes every socket of the user on every instance (4408), but those let in after the
     * disconnect was recorded (a user who came back at once, to an instance the event reaches
     * late). Answers once the bus has the event, as removeVendorMember does.
     */
    async disconnectUser(userId: string, by: ModeratorInput): Promise<void> {
      const action = await store.recordModeration(userModeration("disconnect_user", userId, by));
      publishUser(userId, {
        type: "disconnect",
        user_id: userId,
        reason: "operator",
        disconnected_on: action.created_at,
      });
      await published();
    },
  };
}

/** The audit entry of a moderation aimed at a user. */
function userModeration(action: string, userId: string, by: ModeratorInput): ModerationRecord {
  return {
    action,
    moderator_id: by.moderator_id,
    target_user_id: userId,
    target_message_id: null,
    reason: by.reason,
  };
}
