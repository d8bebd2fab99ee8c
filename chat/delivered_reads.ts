import type { ReadTally } from "./ports.ts";

/** The most entries kept per chat; past it the older half goes (a sweep then reads the marks). */
const MAX_ENTRIES_PER_CHAT = 100_000;

/**
 * The read marks this instance delivered, by chat, with their time (the store's `read_at`, whole
 * ms): what the store's tally of a window's marks is compared with, so that a sweep reads the marks
 * themselves only of a chat whose tallies differ. A difference costs that read, never a mark: the
 * replay still sends only the marks its sockets lack.
 */
export class DeliveredReads {
  /** Per chat, flat pairs in delivery order: read_at (ms since the epoch), marks. */
  #byChat = new Map<string, number[]>();

  /** `marks` messages marked read at `readAtMs` were delivered (a `messages_read` marks many). */
  add(chatId: string, readAtMs: number, marks: number): void {
    let entries = this.#byChat.get(chatId);
    if (!entries) this.#byChat.set(chatId, entries = []);
    const last = entries.length - 2;
    // the marks of one batch share their time
    if (last >= 0 && entries[last] === readAtMs) {
      entries[last + 1]! += marks;
      return;
    }
    entries.push(readAtMs, marks);
    if (entries.length > 2 * MAX_ENTRIES_PER_CHAT) entries.splice(0, MAX_ENTRIES_PER_CHAT);
  }

  /** The chat's marks delivered with `read_at` after `fromMs` and up to `toMs`. */
  tally(chatId: string, fromMs: number, toMs: number): ReadTally {
    const entries = this.#byChat.get(chatId) ?? [];
    let reads = 0;
    let offsetsMs = 0;
    for (let at = 0; at < entries.length; at += 2) {
      const readAtMs = entries[at]!;
      if (readAtMs <= fromMs || readAtMs > toMs) continue;
      const marks = entries[at + 1]!;
      reads += marks;
      offsetsMs += (readAtMs - fromMs) * marks;
    }
    return { reads, offsetsMs };
  }

  /** Forgets the marks at or before `ms`, and every mark of the chats no longer followed. */
  forget(ms: number, followed: ReadonlySet<string>): void {
    for (const [chatId, entries] of this.#byChat) {
      if (!followed.has(chatId)) {
        this.#byChat.delete(chatId);
        continue;
      }
      // in delivery order, close to time order: a stray older one goes at a later look
      let kept = 0;
      while (kept < entries.length && entries[kept]! <= ms) kept += 2;
      entries.splice(0, kept);
      if (entries.length === 0) this.#byChat.delete(chatId);
    }
  }

  /** How many entries it keeps, all chats together (for tests). */
  get size(): number {
    let size = 0;
    for (const entries of this.#byChat.values()) size += entries.length / 2;
    return size;
  }
}
