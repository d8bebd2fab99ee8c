import type { Delivery } from "../chat/feed.ts";

/**
 * The order in which live events reach one socket, against the pages it is sent from the
 * store: an event waits while the socket's first frames are prepared, while the history of a
 * chat taken in later is sent, and while the socket's access is checked again after events may
 * have been lost; a message a page already had is not sent again. No I/O: the connection asks,
 * and sends.
 */
const UNTIL_CHECKED = 1;
const UNTIL_SCREENED = 2;
const UNTIL_ROUND_TRIP = 4;
const UNTIL_LISTED = 8;

export class DeliveryOrder {
  #ready = false;
  /**
   * Why every live event waits (flags, a number rather than a set to keep an idle socket small):
   * the socket's access is checked again, its user's sanctions are read (sanction_screens.ts),
   * a round trip of the bus is awaited, or the chat list is read to be pushed.
   */
  #holding = 0;
  /** How many times holdUntilChecked was asked: a check lifts only the holds asked before it. */
  #checksAsked = 0;
  /** The screen whose answer lifts the screen hold (a later screen's replaces it). */
  #screen = 0;
  /** How many round trip holds were asked: the newest one's lifts the hold. */
  #roundTrips = 0;
  /** Live events that arrived while the first frames were being prepared, or during a hold. */
  #early: Delivery[] = [];
  /**
   * Live events of chats being taken in after connect, held until their history is out. Made
   * on first use: only a chats socket that is told of a new chat needs it.
   */
  #adopting: Map<string, Delivery[]> | undefined;
  /**
   * Highest seq sent per chat where a page from the store and live events overlap (the first
   * page on the single-chat endpoint, the history of a chat taken in later).
   */
  #lastSeqSent = new Map<string, number>();
  /**
   * Per chat, the last seq of the pages sent (first page, history of a chat taken in) and of the
   * unread counts read from the store (see unreadSent): they count every message up to it, newer
   * than the pushes that followed those messages live.
   */
  #pagedUpTo = new Map<string, number>();

  /**
   * True when `delivery` is to be sent now. False when it is held (given back by `ready()` or
   * `release()`), or when it is a message a page already had.
   */
  due(delivery: Delivery): boolean {
    const { frame } = delivery.envelope;
    if (!this.#ready || this.#holding !== 0) {
      this.#early.push(delivery);
      return false;
    }
    const adopting = this.#adopting?.get(frame.chat_id);
    if (adopting) {
      adopting.push(delivery);
      return false;
    }
    if (frame.type === "unread_messages" && delivery.afterSeq !== undefined) {
      // the push of a message a page had: the page's own count went out after it was read
      if (delivery.afterSeq <= (this.#pagedUpTo.get(frame.chat_id) ?? 0)) return false;
    } else if (frame.type === "chat_message") {
      const sent = this.#lastSeqSent.get(frame.chat_id);
      if (sent !== undefined) {
        if (frame.message.seq <= sent) return false;
        this.#lastSeqSent.set(frame.chat_id, frame.message.seq);
      }
    }
    return true;
  }

  /** The first frames are out: the events held meanwhile, in arrival order, to deliver again. */
  ready(): Delivery[] {
    this.#ready = true;
    return this.#holding !== 0 ? [] : this.#early.splice(0);
  }

  /** Holds every live event until a check begun after this: the access is to be checked first. */
  holdUntilChecked(): void {
    this.#holding |= UNTIL_CHECKED;
    this.#checksAsked++;
  }

  /** A check begins; what it returns goes to `checked()` once it kept the socket. */
  checkBegins(): number {
    return this.#checksAsked;
  }

  /**
   * The check that began at `began` kept the socket: the events held, in arrival order, to
   * deliver again; none while a hold asked for after it began waits for its own check.
   */
  checked(began: number): Delivery[] {
    return began === this.#checksAsked ? this.#lift(UNTIL_CHECKED) : [];
  }

  /** Holds every live event until `screened(screen)`: the user's sanctions are read first. */
  holdUntilScreened(screen: number): void {
    this.#holding |= UNTIL_SCREENED;
    this.#screen = screen;
  }

  /**
   * Screen `screen` kept the socket: the events held, in arrival order, to deliver again; none
   * while a later screen holds them.
   */
  screened(screen: number): Delivery[] {
    return screen === this.#screen ? this.#lift(UNTIL_SCREENED) : [];
  }

  /**
   * Holds every live event until `roundTripped()` with what this returns: an event may not go
   * out before a round trip of the bus (see Connection.deliver).
   */
  holdUntilRoundTrip(): number {
    this.#holding |= UNTIL_ROUND_TRIP;
    return ++this.#roundTrips;
  }

  /**
   * The round trip of `hold` came back: the events held, in arrival order, to deliver again;
   * none while a newer round trip hold waits for its own.
   */
  roundTripped(hold: number): Delivery[] {
    return hold === this.#roundTrips ? this.#lift(UNTIL_ROUND_TRIP) : [];
  }

  /**
   * Holds every live event until `listed()`: the chat list is read to be pushed, and an event
   * sent while it is read would go ahead of a list that may not have it. One list at a time
   * (the socket's queue reads them).
   */
  holdUntilListed(): void {
    this.#holding |= UNTIL_LISTED;
  }

  /** The list read with `holdUntilListed()` was sent (or failed): the events held, as above. */
  listed(): Delivery[] {
    return this.#lift(UNTIL_LISTED);
  }

  /** Ends one hold; the events held once none is left and the first frames are out. */
  #lift(hold: number): Delivery[] {
    this.#holding &= ~hold;
    return this.#ready && this.#holding === 0 ? this.#early.splice(0) : [];
  }

  /** How many live events are held: first frames, a check, a screen, a round trip, a list. */
  get held(): number {
    return this.#early.length;
  }

  /** The last seq of `chatId` a page sent; undefined when none was. */
  sentUpTo(chatId: string): number | undefined {
    return this.#lastSeqSent.get(chatId);
  }

  /**
   * A page of `chatId` up to `lastSeq` was sent: live messages it had, and their unread pushes,
   * are dropped, now and later.
   */
  pageSent(chatId: string, lastSeq: number): void {
    this.#lastSeqSent.set(chatId, lastSeq);
    this.#pagedUpTo.set(chatId, lastSeq);
  }

  /**
   * An unread count read from the store with `chatId` at `lastSeq` was sent (an `unread_messages`
   * with a page or answering `unread_message`, a `chats` list): the pushes of the messages it
   * counted, still on their way, are older and would take its count back, so they are dropped, as
   * a page's are.
   */
  unreadSent(chatId: string, lastSeq: number): void {
    this.#pagedUpTo.set(chatId, Math.max(lastSeq, this.#pagedUpTo.get(chatId) ?? 0));
  }

  /**
   * A chat list read from the store was sent, counting each chat's unread up to its seq in
   * `counted`: the pushes of those messages are older than it. The ones held meanwhile are
   * dropped now; those still to come, only of the chats whose messages up to it the feed had not
   * all delivered (`delivered`), later. Only those chats are remembered: a list names every chat
   * of its user, and the pushes of the messages delivered are out or held already.
   */
  listSent(
    counted: ReadonlyMap<string, number>,
    delivered: (chatId: string) => number | undefined,
  ): void {
    this.#early = this.#early.filter(({ afterSeq, envelope: { frame } }) =>
      frame.type !== "unread_messages" || afterSeq === undefined ||
      afterSeq > (counted.get(frame.chat_id) ?? 0)
    );
    for (const [chatId, lastSeq] of counted) {
      if (lastSeq > (delivered(chatId) ?? 0)) this.unreadSent(chatId, lastSeq);
    }
  }

  /** Holds the live events of `chatId` while its history is sent. */
  hold(chatId: string): void {
    (this.#adopting ??= new Map()).set(chatId, []);
  }

  /** Whether the live events of `chatId` are held while its history is sent. */
  holds(chatId: string): boolean {
    return this.#adopting?.has(chatId) ?? false;
  }

  /** Ends the hold on `chatId`: the events held, in arrival order (none when not held). */
  release(chatId: string): Delivery[] {
    const held = this.#adopting?.get(chatId) ?? [];
    this.#adopting?.delete(chatId);
    return held;
  }

  /** Forgets the events held (first frames, a check, a screen, a round trip, a list); to close. */
  clear(): void {
    this.#early = [];
  }
}
