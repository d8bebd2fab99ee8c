import { ChatError } from "./errors.ts";
import type { ChatStore, ReadRefusal, RecentWindow } from "./ports.ts";
import type { Membership, Sanction } from "./types.ts";

/**
 * What the store showed of a user as it let them in: the newest operator disconnect of the user
 * (when recorded, on the database's clock; null: never). A socket opened with it was opened after
 * that disconnect, and is ended by newer ones only (see ws/operator_disconnects.ts).
 */
export interface Admission {
  disconnectedOn: string | null;
}

/**
 * Who may be where: a user's memberships of chats, and the bans and operator disconnects that
 * refuse or end them. Part of the chat service (see createChatService).
 */
export function createMembershipOperations(deps: { store: ChatStore }) {
  const { store } = deps;

  /** The user's admission (see Admission); `forbidden` when banned. */
  async function admit(userId: string): Promise<Admission> {
    const sanction = (await store.sanctionsOf([userId])).get(userId);
    if (sanction?.banned) throw refusal("banned");
    return { disconnectedOn: sanction?.disconnectedOn ?? null };
  }

  return {
    /**
     * The user's membership of a chat, with their admission; `forbidden` when unknown, not a
     * participant or banned.
     */
    async joinChat(
      userId: string,
      chatId: string,
    ): Promise<Admission & { membership: Membership }> {
      const [membership, admission] = await Promise.all([
        store.membership(chatId, userId),
        admit(userId),
      ]);
      if (!membership) throw refusal("outsider");
      return { ...admission, membership };
    },

    /** Every chat of the user, with their admission; `forbidden` when banned. */
    async joinAllChats(userId: string): Promise<Admission & { chats: Membership[] }> {
      const [chats, admission] = await Promise.all([store.chatsOf(userId), admit(userId)]);
      return { ...admission, chats };
    },

    /** The vendors the user acts for, as a member. */
    vendorsOf(userId: string): Promise<string[]> {
      return store.vendorsOf(userId);
    },

    /**
     * Of `userIds`, the ones banned now or ever disconnected by an operator, in one query. A
     * disconnect's time is the database's, as the socket's admission and the disconnect's event
     * have it: a socket judges all three alike (see ws/operator_disconnects.ts).
     */
    sanctionsOf(userIds: readonly string[]): Promise<Map<string, Sanction>> {
      return store.sanctionsOf(userIds);
    },

    /** The users banned or disconnected by an operator within `window`. */
    sanctionedWithin(window: RecentWindow): Promise<string[]> {
      return store.sanctionedWithin(window);
    },

    /**
     * The user's side in each of the chats they may see, of those named, in one read (chats
     * created for a user's chats socket, taken in together).
     */
    memberships(userId: string, chatIds: readonly string[]): Promise<Membership[]> {
      return store.memberships(chatIds, userId);
    },

    /** The user's side in one chat they may see (used on `/v1/ws/chats/`). */
    async membership(userId: string, chatId: string): Promise<Membership> {
      const membership = await store.membership(chatId, userId);
      if (!membership) throw refusal("outsider");
      return membership;
    },
  };
}

/**
 * The `forbidden` a user is refused with, in the same words whatever they asked: an unknown
 * chat reads as one of another's.
 */
export function refusal(reason: ReadRefusal): ChatError {
  return new ChatError(
    "forbidden",
    reason === "banned" ? "banned" : "not a participant of this chat",
  );
}

/** Resolves when the user is not banned now; `forbidden` when they are. */
export async function refuseBanned(
  store: Pick<ChatStore, "activeBan">,
  userId: string,
): Promise<void> {
  if (await store.activeBan(userId)) throw refusal("banned");
}

/**
 * Resolves when the user is still in the chat and not banned, as the store has it now; else
 * `forbidden`. A socket learns of a removal or a ban by an event that may still be on its way (or
 * lost until a sweep finds it): what it asks meanwhile is checked here, not by what it holds.
 */
export async function refuseOutsider(
  store: Pick<ChatStore, "activeBan" | "membership">,
  userId: string,
  chatId: string,
): Promise<void> {
  const [membership] = await Promise.all([
    store.membership(chatId, userId),
    refuseBanned(store, userId),
  ]);
  if (!membership) throw refusal("outsider");
}
