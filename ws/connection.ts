import type { Principal } from "../auth/verifier.ts";
import type { UserEvent } from "../chat/events.ts";
import type { Admission } from "../chat/membership_operations.ts";
import type { ChatFeed, Delivery } from "../chat/feed.ts";
import type { Actor, ChatService } from "../chat/service.ts";
import type { Membership, Sanction } from "../chat/types.ts";
import type { ServerFrame } from "../protocol/mod.ts";
import type { SocketMetrics } from "../observability/metrics.ts";
import type { AccessCheckOutcome } from "./access_checks.ts";
import { CloseCode, type ErrorFrame } from "./errors.ts";
import { answerAction, type UploadPlaces } from "./actions.ts";
import type { ClientFrame } from "./frames.ts";
import { DeliveryOrder } from "./delivery_order.ts";
import type { FrameIntake, IntakeLimits, Taken } from "./frame_intake.ts";
import { OperatorDisconnects } from "./operator_disconnects.ts";
import { SocketChats } from "./socket_chats.ts";
import { type AccessContext, checkAccessAgain, closeIfSanctioned } from "./socket_access.ts";
import {
  adoptNewChats,
  adoptVendor,
  letGoNewChats,
  type PagesContext,
  resendChatList,
  sendFirstFrames,
  sendNewChatsList,
} from "./store_pages.ts";
import type { Endpoint } from "./endpoint.ts";

/** How often, and how soon at first, a new chat the store failed to take in is tried again. */
const ADOPT_RETRIES = 3;
const ADOPT_RETRY_MS = 1_000;
/**
 * How long a chats socket waits after taking in a new chat before it sends the chat list again:
 * the chats created meanwhile (an import of many for one vendor) share one read of the list,
 * which sorts all of the user's chats.
 */
const NEW_CHATS_LIST_DELAY_MS = 500;

/** What one socket may do before it is refused or closed. */
export interface ConnectionLimits extends IntakeLimits {
  /** Bytes queued for a socket before it counts as a slow reader and is closed. */
  maxBufferedBytes: number;
}

/**
 * The most live events one socket holds (while its first frames are prepared, its access is
 * checked, or a round trip of the bus is awaited); past it the socket is closed with 1013, to
 * reconnect and read what it missed from the store, instead of holding an outage's worth of
 * events.
 */
export const MAX_HELD_EVENTS = 10_000;

/** The code reserved for a close whose code is not known here (1005, RFC 6455 7.4.1). */
const NO_STATUS_RECEIVED = 1005;

/** A user's `disconnect` event: a ban's (reason `banned`) or an operator's. */
export type DisconnectEvent = Extract<UserEvent, { type: "disconnect" }>;

/** What every socket of a server shares: one object for all, nothing held per socket. */
export interface ConnectionDeps {
  service: ChatService;
  feed: ChatFeed;
  maxFrameBytes: number;
  limits: ConnectionLimits;
  /** Places of open uploads per user, which base64 media in a frame takes one of. */
  mediaRequests: UploadPlaces;
  now: () => number;
  onError: (error: unknown, context: string, connection: Connection) => void;
  /** The connection is done, no more frames either way; `code` as sent or received. */
  onClose: (connection: Connection, code: number) => void;
  /** Closes a socket for the server, and cuts it if its client leaves the close unanswered. */
  closeSocket: (socket: WebSocket, code: number, reason: string) => void;
  /**
   * A ban's event was heard by a socket of its user: their sockets close if the store has the
   * ban in force (see SanctionScreens.confirmBan).
   */
  confirmBan: (event: DisconnectEvent) => void;
  /** Instruments the sockets feed; absent: nothing is measured. */
  instruments?: SocketMetrics;
}

/**
 * One socket's state: who it is, which chats it sees (its SocketChats), and the order of its
 * frames. Frames from the client are handled one at a time, in arrival order; subscriptions
 * belong to the connection and end with it. When its token expires is
 * ws/connection_registry.ts's to watch. What it is sent from the store is ws/store_pages.ts's;
 * its access checked again, ws/socket_access.ts's.
 */
export class Connection {
  /** Names the socket in log lines (never the token). */
  readonly id: string;
  readonly userId: string;
  /** When the token the socket was opened with expires (ms since the epoch). */
  readonly tokenExpiresAt: number;
  readonly endpoint: Endpoint;
  #socket: WebSocket;
  #deps: ConnectionDeps;
  #queue: Promise<void>;
  /**
   * Timers of new chats to take in again and of the list owed for them (#later), cleared at the
   * close; made with the first (an idle socket holds none).
   */
  #timers: Set<ReturnType<typeof setTimeout>> | undefined;
  /**
   * New chats told and not yet taken in, waiting in `#queue` for one take-in of them all
   * (#tellNewChat); undefined when none waits.
   */
  #newChats: Set<string> | undefined;
  /** A send of the list owed for new chats is due (#sendNewChatsListSoon). */
  #newChatsListDue = false;
  #closed = false;
  /** Set by shutdown(): frames not yet started are dropped, unacknowledged. */
  #stopping = false;
  /** When live events go out, against the pages sent from the store. */
  #order = new DeliveryOrder();
  /** The chats this socket sees, and its subscriptions to them. */
  #chats: SocketChats;
  /** Rate limit and bound of the client frames waiting in `#queue` (since the upgrade). */
  #intake: FrameIntake;
  /** The operator disconnects that end this socket: those made since the store let it in. */
  #disconnects = new OperatorDisconnects();
  /**
   * The chats this socket last said its user is typing in, told they stopped when it goes (a
   * closed tab sends no `is_typing: false`); made with the first.
   */
  #typingIn: Map<string, Actor> | undefined;

  constructor(
    socket: WebSocket,
    id: string,
    principal: Principal,
    endpoint: Endpoint,
    deps: ConnectionDeps,
    intake: FrameIntake,
  ) {
    this.#socket = socket;
    this.id = id;
    this.userId = principal.userId;
    this.tokenExpiresAt = principal.expiresAt;
    this.endpoint = endpoint;
    this.#deps = deps;
    this.#intake = intake;
    this.#chats = new SocketChats(this, deps);
    socket.onmessage = (event) => this.receive(event.data);
    socket.onclose = (event) => this.#dispose(event.code);
    if (socket.readyState === WebSocket.CLOSED) {
      // closed by its client while the token was being checked: its close event has passed
      this.#dispose(NO_STATUS_RECEIVED);
      this.#queue = Promise.resolve();
      return;
    }
    this.#queue = sendFirstFrames(this.#context());
  }

  /** Closes the socket with a contract close code; idempotent. */
  close(code: number, reason: string): void {
    if (this.#closed) return;
    this.#dispose(code);
    this.#deps.closeSocket(this.#socket, code, reason);
  }

  /**
   * Closes for a server shutdown: frames not yet started are dropped (never acknowledged, so
   * the client sends them again), the one being handled finishes and is acknowledged, then
   * the socket closes with `code`. Resolves once the close frame is sent; the client's answer
   * is `handshakeClosed()`.
   */
  async shutdown(code: number, reason: string): Promise<void> {
    this.#stopping = true;
    await this.#queue;
    this.close(code, reason);
  }

  /** Settles when the socket's close handshake is over (at once if it is). */
  handshakeClosed(): Promise<void> {
    if (this.#socket.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.#socket.addEventListener("close", () => resolve(), { once: true });
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** A live event of a chat this socket follows, sent on in order with what the store gave. */
  deliver(delivery: Delivery): void {
    if (this.#closed) return;
    const { audience, frame } = delivery.envelope;
    const membership = this.#chats.memberships.get(frame.chat_id);
    if (!membership) return;
    if (audience.to === "side" && audience.side !== membership.side) return;
    if (audience.to === "others" && audience.user_id === this.userId) {
      if (frame.type === "typing") this.#typingElsewhere(frame.chat_id, frame.is_typing, audience);
      return;
    }
    this.#holdForRoundTrip(membership, delivery);
    if (this.#order.due(delivery)) {
      if (this.#sendText(delivery.text)) this.#delivered(delivery);
    } else if (this.#order.held > MAX_HELD_EVENTS) {
      this.close(CloseCode.tryAgainLater, "too many events held");
    }
  }

  /**
   * A socket that sees the chat as a vendor's member is sent what this instance delivered
   * without the bus (its own events, what it read from the store) only after a round trip of
   * the bus has brought what other instances published before: the member's removal, which its
   * instance put on the bus before answering, may be among it, and the event caused after the
   * answer. Holds the socket's events, `delivery` first, until then.
   */
  #holdForRoundTrip(membership: Membership, delivery: Delivery): void {
    if (membership.side !== "vendor" || membership.chat.vendor_id === this.userId) return;
    const roundTrip = this.#deps.feed.roundTripBefore(delivery);
    if (!roundTrip) return;
    const hold = this.#order.holdUntilRoundTrip();
    void roundTrip.then(() => {
      for (const held of this.#order.roundTripped(hold)) this.deliver(held);
    });
  }

  #delivered(delivery: Delivery): void {
    const instruments = this.#deps.instruments;
    if (!instruments) return;
    instruments.eventsDelivered.inc({ type: delivery.envelope.frame.type });
    // publisher's clock: another instance's may be slightly ahead
    const latencyMs = Math.max(0, this.#deps.now() - delivery.envelope.sent_at);
    instruments.fanoutLatency.observe(latencyMs / 1000);
  }

  /**
   * The store let the socket in (its first read): an operator's disconnect heard meanwhile, and
   * recorded after what the read showed, closes it with 4408. False when closed.
   */
  admitted(admission: Admission): boolean {
    if (this.#disconnects.admitted(admission.disconnectedOn)) this.#closeDisconnected();
    return !this.#closed;
  }

  /** See AccessHost.endedByDisconnect. */
  endedByDisconnect(disconnectedOn: string): boolean {
    return this.#disconnects.heard(disconnectedOn);
  }

  #closeDisconnected(): void {
    this.close(CloseCode.operatorDisconnect, "disconnected by an operator");
  }

  /** A user event heard for this socket: its user's own, or a vendor's the user acts for. */
  onUserEvent(event: UserEvent): void {
    switch (event.type) {
      case "disconnect":
        if (event.user_id !== this.userId) return;
        if (event.reason === "banned") this.#deps.confirmBan(event);
        else if (this.#disconnects.heard(event.disconnected_on)) this.#closeDisconnected();
        return;
      case "chat_created":
        if (this.endpoint.kind !== "chats") return;
        this.#tellNewChat(event.chat.id);
        return;
      case "membership_added":
        if (event.user_id !== this.userId || this.endpoint.kind !== "chats") return;
        this.#queue = this.#queue.then(() => adoptVendor(event.vendor_id, this.#context()));
        return;
      case "membership_revoked":
        if (event.user_id !== this.userId || !this.#chats.revoke(event.vendor_id)) return;
        this.#queue = this.#queue.then(() => resendChatList(this.#context()));
        return;
    }
  }

  /**
   * Checks this socket's access against the store (checkAccessAgain) after the frames before it,
   * for user events the bus may have lost (see ChatFeed.requestResync); when kept, the events
   * held for the check go out. Never rejects.
   */
  checkAccess(): Promise<AccessCheckOutcome> {
    const checked = this.#queue.then(async () => {
      // a hold asked for once this check had begun waits for the check that request queued
      const began = this.#order.checkBegins();
      const outcome = this.#closed || this.#stopping
        ? "gone"
        : await checkAccessAgain(this.#context());
      // kept: what was held goes out, less what a chat the check dropped would have had
      if (outcome === "kept") {
        for (const delivery of this.#order.checked(began)) this.deliver(delivery);
      }
      return outcome;
    });
    this.#queue = checked.then(() => {});
    return checked;
  }

  /**
   * Told as a check of every socket is requested: a socket that sees chats as a member of their
   * vendor may have been removed with an event the bus lost, so it is sent nothing until its
   * check has run (then the events held meanwhile, or none if it lost the chat). The customer's
   * and the vendor's own sockets cannot lose a chat and are not held. True when held.
   */
  holdUntilChecked(): boolean {
    if (this.#closed || !this.#chats.seesAsMember()) return false;
    this.#order.holdUntilChecked();
    return true;
  }

  /** Holds every live event until `screened(screen, …)` (see ws/sanction_screens.ts). */
  holdUntilScreened(screen: number): boolean {
    if (this.#closed) return false;
    this.#order.holdUntilScreened(screen);
    return true;
  }

  /** Holds every live event until the release returned is called (a chat list being read). */
  holdLiveEvents(): () => void {
    this.#order.holdUntilListed();
    return () => {
      for (const delivery of this.#order.listed()) this.deliver(delivery);
    };
  }

  /**
   * The user's sanctions were read: a banned user's socket is closed with 4403, one an operator
   * disconnected since the store let it in with 4408; otherwise, unless a later screen holds it, the
   * events held go out (those of a socket held for its own check wait for that too).
   */
  screened(screen: number, sanction: Sanction | undefined): "kept" | "closed" | "gone" {
    if (this.#closed) return "gone";
    if (closeIfSanctioned(this, sanction)) return "closed";
    for (const delivery of this.#order.screened(screen)) this.deliver(delivery);
    return "kept";
  }

  /** One frame from the client. */
  receive(data: unknown): void {
    if (this.#closed || this.#stopping) return;
    this.takeIn(this.#intake.take(data));
  }

  /**
   * A client frame as its intake took it: now, or (for the frames that came before the token
   * was checked) when the socket was taken in.
   */
  takeIn(taken: Taken): void {
    if (this.#closed || this.#stopping) return;
    switch (taken.to) {
      case "close":
        return this.close(taken.code, taken.reason);
      case "answer":
        // a frame refused at the door (rate_limited) is answered at once; one that could not be
        // read took a token like any frame, and is answered in its turn, after the first frames
        // and the answers of the frames before it: a client without request_ids goes by order
        if (taken.error.code === "rate_limited") return this.#sendError(taken.error);
        this.#queue = this.#queue.then(() => this.#sendError(taken.error));
        return;
      case "queue":
        this.#queue = this.#queue.then(() => {
          this.#intake.leaveQueue(taken.size);
          return this.#handle(taken.frame);
        });
    }
  }

  async #handle(frame: ClientFrame): Promise<void> {
    if (this.#closed || this.#stopping) return;
    // held for an answer read (ActionContext.holdLiveEvents): let go once its ack or error is out
    let release: (() => void) | undefined;
    try {
      await this.#answer(frame, () => release ??= this.holdLiveEvents());
    } finally {
      release?.();
    }
  }

  async #answer(frame: ClientFrame, holdLiveEvents: () => void): Promise<void> {
    const answer = await answerAction(frame, {
      service: this.#deps.service,
      mediaRequests: this.#deps.mediaRequests,
      userId: this.userId,
      endpoint: this.endpoint,
      actorIn: (chatId) => this.#chats.actorIn(chatId),
      askerIn: (chatId) => this.#chats.askerIn(chatId),
      send: (reply) => this.#sendRead(reply),
      unreadSent: (chatId, lastSeq) => this.#order.unreadSent(chatId, lastSeq),
      sayTyping: (actor, isTyping) => this.#sayTyping(actor, isTyping),
      holdLiveEvents,
      instruments: this.#deps.instruments,
      onError: (error, context) => this.#deps.onError(error, context, this),
    });
    if (answer) this.#send(answer);
  }

  /**
   * Chats the socket lost while it stays open (SocketChats): `chatIds`, and with `vendorId` every
   * chat of that vendor seen as its member. The others are told the user stopped typing in them,
   * as at the close, since the user may say nothing there any more.
   */
  lost(chatIds: readonly string[], vendorId?: string): void {
    if (!this.#typingIn) return;
    const named = new Set(chatIds);
    for (const [chatId, actor] of this.#typingIn) {
      const { chat, side } = actor.membership;
      const asMember = side === "vendor" && chat.vendor_id !== this.userId;
      if (!named.has(chatId) && !(asMember && chat.vendor_id === vendorId)) continue;
      this.#typingIn.delete(chatId);
      this.#deps.service.typing(actor, false, this.id);
    }
  }

  /**
   * The user said on another socket that they are typing in `chatId`: that socket has the last
   * word there now, and this one says nothing for them when it goes (the laptop closed while
   * the phone types). Only a `true` takes it: a `false` heard late, after this socket's newer
   * `true`, would leave the others seeing the user type after this socket went. Two `true`s
   * said at once on two instances may still take each other's word, as a client that never
   * says `false` would.
   */
  #typingElsewhere(chatId: string, isTyping: boolean, audience: { socket?: string | undefined }) {
    if (isTyping && audience.socket !== undefined && audience.socket !== this.id) {
      this.#typingIn?.delete(chatId);
    }
  }

  #sayTyping(actor: Actor, isTyping: boolean): void {
    // a typing answered after the socket went (its chat was looked up in the store meanwhile)
    // is not told: a `true` after the close's `false` would stay up on the other side for good
    if (this.#closed) return;
    const chatId = actor.membership.chat.id;
    if (isTyping) (this.#typingIn ??= new Map()).set(chatId, actor);
    else this.#typingIn?.delete(chatId);
    this.#deps.service.typing(actor, isTyping, this.id);
  }

  /** An error frame for this socket alone, counted by its code. */
  #sendError(frame: ErrorFrame): void {
    this.#deps.instruments?.errors.inc({ code: frame.code });
    this.#send(frame);
  }

  /** What the modules that send this socket pages, or check its access, work with. */
  #context(): PagesContext & AccessContext {
    return {
      connection: this,
      service: this.#deps.service,
      chats: this.#chats,
      order: this.#order,
      send: (frame) => this.#sendRead(frame),
      roundTrip: () => this.#deps.feed.roundTrip(),
      onError: (error, context) => this.#deps.onError(error, context, this),
    };
  }

  /**
   * A frame for this socket alone, read from the store. A chat list counts each chat's unread up
   * to its last message, as an answer to `unread_message` does: the pushes of those messages,
   * held or still on their way, are older, and dropped (DeliveryOrder.listSent).
   */
  #sendRead(frame: ServerFrame): void {
    if (frame.type === "chats") {
      const counted = new Map(
        frame.chats.map(({ chat_id, last_message }) => [chat_id, last_message?.seq ?? 0]),
      );
      this.#order.listSent(counted, (chatId) => this.#chats.deliveredUpTo(chatId));
    }
    this.#send(frame);
  }

  #send(frame: unknown): void {
    this.#sendText(JSON.stringify(frame));
  }

  /** True when the text was handed to the socket. */
  #sendText(text: string): boolean {
    if (this.#closed || this.#socket.readyState !== WebSocket.OPEN) return false;
    // A reader that cannot keep up is let go rather than buffered without bound; it
    // reconnects and fills the gap with after_seq.
    if (this.#socket.bufferedAmount > this.#deps.limits.maxBufferedBytes) {
      this.close(CloseCode.tryAgainLater, "slow consumer");
      return false;
    }
    try {
      this.#socket.send(text);
      return true;
    } catch (error) {
      this.#deps.onError(error, "send", this);
      return false;
    }
  }

  /**
   * A chat created after the socket connected, to take in: the chats told while a take-in waits
   * in the queue join it, so an import of thousands for one vendor is taken in with a few reads
   * of the store and joins of the feed, not a few each, ahead of the client's frames.
   */
  #tellNewChat(chatId: string): void {
    if (this.#newChats) {
      this.#newChats.add(chatId);
      return;
    }
    const told = this.#newChats = new Set([chatId]);
    this.#queue = this.#queue.then(() => {
      // the chats told from here on wait for the next take-in
      this.#newChats = undefined;
      return this.#adoptNewChats([...told], 0);
    });
  }

  /**
   * Takes in chats created after the socket connected; those the store failed to take in are
   * tried again, after 1, 2 and 4 s, then let go: the sweep's telling of a creation comes once or
   * twice, the first perhaps being the one that failed.
   */
  async #adoptNewChats(chatIds: readonly string[], attempt: number): Promise<void> {
    const unsent = await adoptNewChats(chatIds, this.#context());
    this.#sendNewChatsListSoon();
    if (unsent.length === 0 || this.#closed) return;
    if (attempt >= ADOPT_RETRIES) return letGoNewChats(unsent, this.#context());
    this.#later(() => {
      this.#queue = this.#queue.then(() => this.#adoptNewChats(unsent, attempt + 1));
    }, ADOPT_RETRY_MS * 2 ** attempt);
  }

  /** The list owed for new chats, once; after NEW_CHATS_LIST_DELAY_MS, see there. */
  #sendNewChatsListSoon(): void {
    if (this.#closed || !this.#chats.chatListOwed || this.#newChatsListDue) return;
    this.#newChatsListDue = true;
    this.#later(() => {
      this.#newChatsListDue = false;
      this.#queue = this.#queue.then(() => sendNewChatsList(this.#context()));
    }, NEW_CHATS_LIST_DELAY_MS);
  }

  /** Runs `task` after `ms`, unless the socket closes first. */
  #later(task: () => void, ms: number): void {
    const timers = this.#timers ??= new Set();
    const timer = setTimeout(() => {
      timers.delete(timer);
      task();
    }, ms);
    timers.add(timer);
  }

  #dispose(code: number): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const timer of this.#timers ?? []) clearTimeout(timer);
    this.#timers = undefined;
    this.#chats.stop();
    this.#order.clear();
    for (const actor of this.#typingIn?.values() ?? []) {
      this.#deps.service.typing(actor, false, this.id);
    }
    this.#typingIn = undefined;
    this.#deps.onClose(this, code);
  }
}
