import type { UserEvent } from "../chat/events.ts";
import type { ChatFeed, Delivery, FeedLeave } from "../chat/feed.ts";
import { ChatError } from "../chat/errors.ts";
import { type Admission, refusal } from "../chat/membership_operations.ts";
import type { Actor, ChatService } from "../chat/service.ts";
import type { Membership } from "../chat/types.ts";
import type { ChatAsker } from "../chat/ports.ts";
import type { ServerFrame } from "../protocol/mod.ts";
import type { Endpoint } from "./endpoint.ts";
import { CloseCode } from "./errors.ts";

/** What the chats of a socket need of its connection. */
export interface ChatsHost {
  readonly userId: string;
  readonly endpoint: Endpoint;
  readonly closed: boolean;
  close(code: number, reason: string): void;
  /** Where the events of the chats followed go. */
  deliver(delivery: Delivery): void;
  /** Where the user events heard (the user's own, and the vendors') go. */
  onUserEvent(event: UserEvent): void;
  /** Holds every live event of the socket until the release returned is called. */
  holdLiveEvents(): () => void;
  /**
   * The socket sees these chats no more, though it stays open (a vendor membership revoked, a
   * refresh that lost them), nor, with `vendorId` (whose membership was revoked), any chat of
   * that vendor as its member, those it had not taken in yet too: what the user still says in
   * them is to be taken back.
   */
  lost(chatIds: readonly string[], vendorId?: string): void;
}

/** What the chats of every socket share: one object for all, nothing held per socket. */
export interface ChatsDeps {
  service: ChatService;
  feed: ChatFeed;
}

/**
 * The chats one socket sees, with the user's side in each, kept in step with the store: the
 * chats gained are followed on the feed, the chats lost dropped, and on `/v1/ws/chats/` the
 * vendors the user acts for are heard, for their new chats. Every subscription it makes belongs
 * to the socket and ends with `stop()`.
 */
export class SocketChats {
  /** The chats this socket sees, with the user's side in each. */
  readonly memberships = new Map<string, Membership>();
  readonly #host: ChatsHost;
  readonly #deps: ChatsDeps;
  /**
   * Vendors whose membership was revoked while memberships were being read from the store: the
   * event finds nothing to drop until they are kept, so `#keep` applies it then.
   */
  #revokedWhileReading: Set<string> | undefined;
  /** Per membership actorIn is reading from the store, the vendors revoked meanwhile. */
  #revokedWhileActing: Set<Set<string>> | undefined;
  /** The vendors whose user events (new chats) a member's chats socket hears, each with its stop. */
  #vendors = new Map<string, () => void>();
  /**
   * Chats whose feed this socket has joined, each with the leave of its join. A chat lost to a
   * vendor membership revoked or a refresh is left (a removed agent's socket would otherwise
   * have this instance follow every chat of the vendor until it closes); one let go by a take-in
   * that failed stays joined, to be taken in again. Only here is a join held, so that one whose
   * chats were all left is let go (a member removed and added back a thousand times held each
   * join's chats until the close); the close leaves every join still here.
   */
  #followed = new Map<string, FeedLeave>();
  /** The chat list changed and the client has not been sent it yet. */
  #chatListOwed = false;
  #cleanups: Array<() => void> = [];

  constructor(host: ChatsHost, deps: ChatsDeps) {
    this.#host = host;
    this.#deps = deps;
  }

  /**
   * True when the user sees a chat as a member of its vendor (not as its customer or the
   * vendor's own account): access a removal from the vendor takes away.
   */
  seesAsMember(): boolean {
    const { userId } = this.#host;
    for (const { chat, side } of this.memberships.values()) {
      if (side === "vendor" && chat.vendor_id !== userId) return true;
    }
    return false;
  }

  /**
   * Hears the user's own events (disconnects, new chats, membership changes); resolves once the
   * bus brings every one published from then on, so that the store reads after it (access,
   * sanctions, memberships) miss none committed after them.
   */
  async hearUser(): Promise<void> {
    const { userId } = this.#host;
    this.#hold(this.#deps.feed.onUser(userId, (event) => this.#host.onUserEvent(event)));
    await this.#deps.feed.userEventsConfirmed();
  }

  /**
   * The chat of the single-chat endpoint: read from the store (ChatError `forbidden` when the
   * user may not see it), kept and followed; with the user's admission. Undefined when the
   * socket closed meanwhile.
   */
  async takeInChat(chatId: string): Promise<(Admission & { membership: Membership }) | undefined> {
    this.#revokedWhileReading = new Set();
    const joined = await this.#deps.service.joinChat(this.#host.userId, chatId);
    this.#keep([joined.membership]);
    if (this.#host.closed) return undefined;
    await this.#follow([joined.membership.chat.id]);
    return joined;
  }

  /**
   * All of the user's chats, read from the store, kept and followed; their vendors heard.
   * Returns the user's admission.
   */
  async takeInAllChats(): Promise<Admission> {
    const { chats, disconnectedOn } = await this.#readAllChats();
    this.#keep(chats);
    await this.#follow(chats.map((membership) => membership.chat.id));
    return { disconnectedOn };
  }

  /**
   * Chats created after the socket connected, read from the store in one query, kept and
   * followed with one join (an import creates thousands for one vendor at once). Those that are
   * not the user's to see after all are left out: told on the subject of a vendor the user acts
   * for, yet not on its vendor side (the vendor is the chat's customer), or the user's access
   * went meanwhile. When following them fails, none is kept either: a chat kept is taken for
   * followed, by the next telling of its creation and by the next refresh, which would then
   * leave it unfollowed.
   */
  async takeInNewChats(chatIds: readonly string[]): Promise<Membership[]> {
    this.#revokedWhileReading = new Set();
    const found = await this.#deps.service.memberships(this.#host.userId, chatIds);
    this.#keep(found);
    const kept = found.filter((membership) => this.memberships.has(membership.chat.id));
    if (kept.length === 0) return [];
    try {
      await this.#follow(kept.map((membership) => membership.chat.id));
    } catch (error) {
      for (const membership of kept) this.memberships.delete(membership.chat.id);
      throw error;
    }
    // chats gained: the client's list shows them before their first message (sendOwedChatList)
    this.#chatListOwed = true;
    return kept;
  }

  /**
   * The user was made a member of a vendor: the vendor is heard from before the chats are read,
   * so a chat the vendor gets meanwhile is not missed, and the list is sent again. Nothing when
   * the vendor is heard already (the socket read the membership, or was told of it before).
   * When the refresh fails, the vendor is heard no more, so the same event told again (by the
   * feed's sweep) adopts it anew rather than finding it adopted.
   */
  async adoptVendor(vendorId: string, send: (frame: ServerFrame) => void): Promise<void> {
    if (this.#vendors.has(vendorId)) return;
    this.#hearVendors([vendorId]);
    this.#chatListOwed = true;
    try {
      await this.refreshChatList(send);
    } catch (error) {
      this.#stopHearing(vendorId);
      throw error;
    }
  }

  /**
   * The user's membership of a vendor was revoked: the vendor's chats are seen no more. True when
   * a chats socket lost chats by it: the list is owed again (see refreshChatList), as it is
   * when chats are gained. (Chats being read meanwhile are dropped as they are kept, and the list
   * read after them has them gone.)
   */
  revoke(vendorId: string): boolean {
    this.#revokedWhileReading?.add(vendorId);
    for (const revoked of this.#revokedWhileActing ?? []) revoked.add(vendorId);
    const lost = this.#dropVendor(vendorId) && this.#host.endpoint.kind === "chats";
    if (lost) this.#chatListOwed = true;
    return lost;
  }

  /**
   * Reads the user's chats again, and sends the list when it changed, or when a change was not
   * sent yet (a send that failed is made by the next refresh).
   */
  async refreshChatList(send: (frame: ServerFrame) => void): Promise<void> {
    if (await this.#refreshChats()) this.#chatListOwed = true;
    await this.sendOwedChatList(send);
  }

  /** The last seq of the chat the feed delivered (see ChatFeed.deliveredUpTo). */
  deliveredUpTo(chatId: string): number | undefined {
    return this.#deps.feed.deliveredUpTo(chatId);
  }

  /** Whether a change of the chat list was not sent yet. */
  get chatListOwed(): boolean {
    return this.#chatListOwed;
  }

  /**
   * Sends the user's chat list when a change was not sent yet (a new chat taken in). Paid off
   * as the read begins: a change heard while the list is read (a membership revoked) may be
   * missing from it, and is owed again. The socket's live events wait for the list: one sent
   * while it is read, ahead of a list read before it, would have the client show its chat as it
   * was before it.
   */
  async sendOwedChatList(send: (frame: ServerFrame) => void): Promise<void> {
    if (!this.#chatListOwed) return;
    this.#chatListOwed = false;
    const release = this.#host.holdLiveEvents();
    try {
      await this.sendChatList(send);
    } catch (error) {
      this.#chatListOwed = true;
      throw error;
    } finally {
      release();
    }
  }

  /**
   * Sends the first page of the user's chat list, read from the store, once a round trip of the
   * bus begun after the read has come back (ChatFeed.roundTrip), as a chat socket's first page: a
   * user banned or disconnected on another instance before the read, whose event is still on its
   * way here, is closed by it before being sent the last messages and unread counts said after
   * that call answered (the list is no answer to the user's asking, and checks no ban).
   */
  async sendChatList(send: (frame: ServerFrame) => void): Promise<void> {
    const page = await this.#deps.service.listChats(this.#host.userId);
    await this.#deps.feed.roundTrip();
    send({ type: "chats", chats: page.items, has_more: page.has_more });
  }

  /**
   * The user acting in a chat of this socket: on the single-chat endpoint, its chat; on
   * `/v1/ws/chats/`, the chat `chatId` names (ChatError `invalid_payload` when none does).
   */
  async actorIn(chatId: string | undefined): Promise<Actor> {
    const asker = this.askerIn(chatId);
    const known = this.memberships.get(asker.chatId);
    if (known) return { user_id: asker.userId, membership: known };
    // a chat may have been created a moment ago; the store is the truth, unless the vendor it
    // was read as a member of was revoked meanwhile (what the user says there is taken back,
    // ChatsHost.lost, and a typing told after that would stand)
    const revoked = new Set<string>();
    (this.#revokedWhileActing ??= new Set()).add(revoked);
    let membership: Membership;
    try {
      membership = await this.#deps.service.membership(asker.userId, asker.chatId);
    } finally {
      this.#revokedWhileActing.delete(revoked);
    }
    const { chat, side } = membership;
    if (side === "vendor" && chat.vendor_id !== asker.userId && revoked.has(chat.vendor_id)) {
      throw refusal("outsider");
    }
    return { user_id: asker.userId, membership };
  }

  /**
   * The user asking to read, or change their message in, a chat of this socket, as actorIn names
   * it, without reading their membership: a read asked for, and an edit or deletion of one's own
   * message, check it in their own statement. A chat not held yet is named as the frame spells
   * it.
   */
  askerIn(chatId: string | undefined): ChatAsker {
    const { userId, endpoint } = this.#host;
    if (endpoint.kind === "chat") return { userId, chatId: endpoint.chatId };
    if (chatId === undefined) {
      throw new ChatError("invalid_payload", "chat_id is required on this endpoint", {
        issues: [{ path: "chat_id", message: "required" }],
      });
    }
    return { userId, chatId: this.memberships.get(chatId)?.chat.id ?? chatId };
  }

  /** Ends every subscription; for the connection's close. */
  stop(): void {
    for (const cleanup of this.#cleanups.splice(0)) cleanup();
    for (const vendorId of [...this.#vendors.keys()]) this.#stopHearing(vendorId);
    const joins = new Set(this.#followed.values());
    this.#followed.clear();
    for (const leave of joins) leave();
  }

  /**
   * Reads the user's chats again: keeps and follows the ones gained, drops the ones lost, and
   * hears exactly the vendors the user acts for. True when the chats changed. When following
   * the chats gained fails, they are not kept either, so the next refresh gains them again.
   */
  async #refreshChats(): Promise<boolean> {
    const { chats, vendors } = await this.#readAllChats();
    const stored = new Set(chats.map((membership) => membership.chat.id));
    let changed = false;
    const lost: string[] = [];
    for (const chatId of this.memberships.keys()) {
      if (stored.has(chatId)) continue;
      this.memberships.delete(chatId);
      lost.push(chatId);
      changed = true;
    }
    this.#unfollow(lost);
    if (lost.length > 0) this.#host.lost(lost);
    const fresh = chats.filter((membership) => !this.memberships.has(membership.chat.id));
    this.#keep(fresh);
    for (const vendorId of this.#vendors.keys()) {
      if (!vendors.includes(vendorId)) this.#stopHearing(vendorId);
    }
    const gained = fresh.map((membership) => membership.chat.id);
    try {
      await this.#follow(gained.filter((id) => this.memberships.has(id)));
    } catch (error) {
      for (const chatId of gained) this.memberships.delete(chatId);
      if (changed) this.#chatListOwed = true;
      throw error;
    }
    return changed || fresh.length > 0;
  }

  /**
   * The user's chats and vendors from the store, less the vendors revoked during the read: the
   * chats are kept by `#keep`, which drops those; a vendor heard would make a re-adding ignored.
   * The vendors are heard before the chats are read: a chat one gets after that read is told to
   * the socket, where one got between the read and the hearing would be missed, though listed.
   */
  async #readAllChats(): Promise<Admission & { chats: Membership[]; vendors: string[] }> {
    const revokedMeanwhile = this.#revokedWhileReading = new Set<string>();
    const { service } = this.#deps;
    const notRevoked = (vendorId: string) => !revokedMeanwhile.has(vendorId);
    const vendors = (await service.vendorsOf(this.#host.userId)).filter(notRevoked);
    this.#hearVendors(vendors);
    const joined = await service.joinAllChats(this.#host.userId);
    return { ...joined, vendors: vendors.filter(notRevoked) };
  }

  /** Keeps memberships read from the store, less what was revoked while they were read. */
  #keep(memberships: Membership[]): void {
    for (const membership of memberships) this.memberships.set(membership.chat.id, membership);
    const revoked = this.#revokedWhileReading ?? new Set();
    this.#revokedWhileReading = undefined;
    for (const vendorId of revoked) this.#dropVendor(vendorId);
  }

  /**
   * Joins the feeds of the chats still kept, each once: a chat let go by a take-in that failed
   * is still joined; one left (#unfollow) is joined anew.
   */
  async #follow(chatIds: string[]): Promise<void> {
    const wanted = (chatId: string) => this.memberships.has(chatId) && !this.#followed.has(chatId);
    const fresh = chatIds.filter(wanted);
    if (this.#host.closed || fresh.length === 0) return;
    const leave = await this.#deps.feed.join(fresh, (delivery) => this.#host.deliver(delivery));
    if (this.#host.closed) return leave();
    // Joined meanwhile by another take-in (that join's leave is the one kept), or dropped
    // meanwhile (a vendor membership revoked during the join: #unfollow found nothing to leave,
    // and the vendor's chats would be followed until the close).
    const unwanted = new Set(fresh.filter((chatId) => !wanted(chatId)));
    if (unwanted.size > 0) leave([...unwanted]);
    for (const chatId of fresh) if (!unwanted.has(chatId)) this.#followed.set(chatId, leave);
  }

  /** Leaves the feeds of chats no longer seen (those joined; the close leaves the rest). */
  #unfollow(chatIds: readonly string[]): void {
    const byJoin = new Map<FeedLeave, string[]>();
    for (const chatId of chatIds) {
      const leave = this.#followed.get(chatId);
      if (!leave) continue;
      this.#followed.delete(chatId);
      byJoin.set(leave, [...(byJoin.get(leave) ?? []), chatId]);
    }
    for (const [leave, left] of byJoin) leave(left);
  }

  /** Members of a vendor hear of the vendor's new chats on the vendor's subject. */
  #hearVendors(vendorIds: readonly string[]): void {
    for (const vendorId of vendorIds) {
      if (this.#host.closed || this.#vendors.has(vendorId)) continue;
      this.#vendors.set(
        vendorId,
        this.#deps.feed.onUser(vendorId, (event) => this.#host.onUserEvent(event)),
      );
    }
  }

  #stopHearing(vendorId: string): void {
    this.#vendors.get(vendorId)?.();
    this.#vendors.delete(vendorId);
  }

  /** Drops the chats seen as a member of the vendor (closing a single-chat socket); true if any. */
  #dropVendor(vendorId: string): boolean {
    this.#stopHearing(vendorId);
    const { userId, endpoint } = this.#host;
    const dropped: string[] = [];
    for (const [chatId, membership] of this.memberships) {
      const { chat, side } = membership;
      if (chat.vendor_id !== vendorId || side !== "vendor" || userId === vendorId) continue;
      if (endpoint.kind === "chat") {
        this.#host.close(CloseCode.forbidden, "no longer a member");
        return true;
      }
      this.memberships.delete(chatId);
      dropped.push(chatId);
    }
    this.#unfollow(dropped);
    // a chat typed in before it was taken in (its creation still being taken in) is lost too
    this.#host.lost(dropped, vendorId);
    return dropped.length > 0;
  }

  /** Keeps `cleanup` for the close; runs it now if the connection closed meanwhile. */
  #hold(cleanup: () => void): void {
    if (this.#host.closed) cleanup();
    else this.#cleanups.push(cleanup);
  }
}
