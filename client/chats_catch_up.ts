import { worthRetrying } from "./message_order.ts";
import type { ChatsFrame } from "./types.ts";

/**
 * After a connection to `/v1/ws/chats/` opens, the chats the client already knew that its
 * first `chats` page does not list may have missed messages: more than a page of chats had
 * activity while it was away and pushed them down. The list is read on (`list_chats` with
 * `before`, the oldest row's `updated_at`), and each page learned as the first was (a chat
 * with news reads what it missed), until no chat known is left that could still be further
 * down. A chat's `updated_at` only grows and pages go newest first, so a known chat whose
 * activity seen is newer than a page's oldest row, yet was on no page, has left the list
 * (no longer the user's): it is not looked for further. The first connection knows no chats
 * but its first page's, so it reads no further.
 *
 * A read refused for now (`rate_limited`, `unavailable`) is made again after a backoff, as a
 * gap fill's is: a reconnect that finds many chats with news writes a read for each at once,
 * more than the server's burst, and the next page is then refused. So is one not answered in
 * time on a socket kept (a large upload still leaving); on a silent socket it leaves the socket
 * (AddOptions in requests.ts). Any other failure ends it: a lost connection (the next one
 * starts over), the client closed, or a refusal; a later message in a chat missed still shows
 * its gap.
 */
export function createChatsCatchUp(deps: {
  /** The page of chats with activity before `before` (`list_chats`). */
  list(before: string): Promise<ChatsFrame>;
  /** Takes a page as a connection's first: a chat known with a newer message fills. */
  learn(page: ChatsFrame): void;
  /** Waits before reading again after failed read `attempt`; false when the client closed. */
  retryAfter(attempt: number): Promise<boolean>;
}) {
  /** Every chat known, with its newest activity seen (ms): rows' `updated_at`, messages. */
  const activity = new Map<string, number>();
  /** Bumped by each connection: a catch-up of an earlier one stops. */
  let run = 0;

  function saw(chatId: string, at: string): void {
    const time = Date.parse(at);
    if (!((activity.get(chatId) ?? -Infinity) >= time)) activity.set(chatId, time);
  }

  function sawChats(frame: ChatsFrame): void {
    for (const row of frame.chats) saw(row.chat_id, row.updated_at);
  }

  /** The page before `before`, read again while the server refuses for now. */
  async function list(before: string): Promise<ChatsFrame> {
    for (let failures = 0;; failures++) {
      try {
        return await deps.list(before);
      } catch (error) {
        if (!worthRetrying(error) || !(await deps.retryAfter(failures))) throw error;
      }
    }
  }

  async function readOn(first: ChatsFrame, behind: Map<string, number>, mine: number) {
    let page = first;
    while (true) {
      for (const row of page.chats) behind.delete(row.chat_id);
      const oldest = page.chats.at(-1);
      if (!page.has_more || !oldest) return;
      const floor = Date.parse(oldest.updated_at);
      for (const [chatId, at] of behind) if (at > floor) behind.delete(chatId);
      if (behind.size === 0) return;
      page = await list(oldest.updated_at);
      if (run !== mine) return;
      deps.learn(page);
    }
  }

  return {
    /** A `chats` frame seen: its rows' activity. */
    sawChats,
    /** A message seen: its chat's activity was at least its `created_at`. */
    sawMessage(chatId: string, createdAt: string): void {
      saw(chatId, createdAt);
    },
    /** A connection's first `chats` page, before it is learned: reads on while needed. */
    opened(first: ChatsFrame): void {
      const behind = new Map(activity);
      const mine = ++run;
      sawChats(first);
      readOn(first, behind, mine).catch(() => {});
    },
  };
}

export type ChatsCatchUp = ReturnType<typeof createChatsCatchUp>;
