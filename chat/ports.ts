import type { ChatEnvelope, UserEvent } from "./events.ts";
import type {
  Ban,
  Chat,
  ChatParties,
  ChatSummary,
  MediaEntry,
  MediaKind,
  MediaRecord,
  MediaType,
  Membership,
  ModerationAction,
  Sanction,
  Side,
  StoredMessage,
  VendorMember,
  VendorRole,
} from "./types.ts";

/** What the domain needs from the outside world; db/ and bus/ implement it. */

/** An entry of the audit log as the domain writes it (the store adds the id and the time). */
export type ModerationRecord = Omit<ModerationAction, "id" | "created_at">;

/** The event channel between instances (bus/bus.ts implements it). */
export interface EventBus {
  publish(subject: string, payload: Uint8Array): void;
  subscribe(subject: string, handler: (payload: Uint8Array, subject: string) => void): () => void;
  /** Round trip to the transport: subscriptions made before it are in force after it. */
  check(signal?: AbortSignal): Promise<boolean>;
}

/** Parts of an event its publisher has serialised already, so they are not serialised again. */
export interface SerialisedEvent {
  /** The frame. */
  frame?: string;
  /** With `envelope.unread`: the client JSON of each message it names, in the same order. */
  unreadMessages?: readonly string[];
}

/** Where the domain sends its events (chat/feed.ts implements it over the bus). */
export interface EventPublisher {
  publishChat(chatId: string, envelope: ChatEnvelope, serialised?: SerialisedEvent): void;
  publishUser(userId: string, event: UserEvent): void;
  /**
   * Resolves once the bus has what was published so far (or did not answer in time): an event
   * caused after it cannot reach any instance ahead of what was published. Never rejects.
   */
  published(): Promise<void>;
}

/** Bus subject names (bus/subjects.ts implements it). */
export interface Subjects {
  chat(chatId: string): string;
  user(userId: string): string;
  readonly allChats: string;
  readonly allUsers: string;
  readonly resync: string;
}

export interface NewMessage {
  chat_id: string;
  sender_id: string;
  sender_side: Side;
  receiver_id: string;
  media_type: MediaType;
  content: string | null;
  media_id: string | null;
  client_id: string | null;
}

export interface InsertedMessage {
  message: StoredMessage;
  /** True when `client_id` matched an earlier message: nothing was written. */
  duplicate: boolean;
  /** The receiver side's unread right after the write; null for a duplicate. */
  receiver_unread: UnreadSnapshot | null;
}

export interface HistoryQuery {
  limit: number;
  before_seq?: number;
  after_seq?: number;
}

export interface Page<T> {
  items: T[];
  has_more: boolean;
}

export interface UnreadSnapshot {
  count: number;
  /** The newest unread, oldest first. */
  messages: StoredMessage[];
}

/** An unread snapshot read from the store, with the chat's last seq of the same moment. */
export interface StoredUnread extends UnreadSnapshot {
  /** The chat's last seq: the messages up to it are counted. */
  last_seq: number;
}

/**
 * A span of the recent past on the database's clock: from `withinMs` ago up to `exceptLastMs`
 * ago (0, now, when not given).
 */
export interface RecentWindow {
  withinMs: number;
  exceptLastMs?: number;
}

/** A message's read mark as the store keeps it. */
export interface StoredRead {
  chat_id: string;
  message_id: string;
  seq: number;
  reader_id: string;
  read_at: string;
}

/** A window's read marks of one chat, summed: how many, and their times after its start. */
export interface ReadTally {
  reads: number;
  /** The sum over the marks of (read_at - the window's start), in ms. */
  offsetsMs: number;
}

/** A window's read marks, summed per chat (ChatStore.readTallies). */
export interface ReadTallies {
  /** The window on the store's clock, in whole ms since the epoch: after `fromMs`, to `toMs`. */
  fromMs: number;
  toMs: number;
  chats: Array<ReadTally & { chat_id: string }>;
}

/**
 * A read a user asks for: of one chat (`chatId`), or of their own chats (null). The store answers
 * it only while they are a participant of the chat and not banned, as of the read's own
 * statement: a socket hears of a removal or a ban by an event that may still be on its way.
 */
export interface Asker {
  userId: string;
  chatId: string | null;
}

/** A user asking to read one chat, by its id (as their socket holds it, or as they spelt it). */
export type ChatAsker = Asker & { chatId: string };

/** Why the store refused a read asked for: not a participant (or no such chat), or banned. */
export type ReadRefusal = "outsider" | "banned";

/** What a read asked for gave, or why it was refused. */
export type AskedRead<T> = { read: T } | { refused: ReadRefusal };

/**
 * Why the store refused a change of a user's own message: as a read asked for (banned first, as
 * a send is refused), or `unknown` (no such message in their chat, or a tombstone, but to its
 * sender deleting it again), `not_sender` (another's message), `not_text` (an edit of media).
 */
export type ChangeRefusal = ReadRefusal | "unknown" | "not_sender" | "not_text";

/**
 * What a change of one message gave: the message as stored after it (`changed` false when there
 * was nothing to change) and, changed, its chat's parties (to tell them with no read of the chat
 * besides: the asker's socket need not hold the chat, a moderator names only the message).
 */
export type MessageChange =
  | { message: StoredMessage; changed: false }
  | { message: StoredMessage; changed: true; chat: ChatParties };

/** What a change of one's own message gave (see MessageChange), or why it was refused. */
export type OwnChange = MessageChange | { refused: ChangeRefusal };

/**
 * The audit entry of a moderator's deletion as the domain writes it: the store aims it at the
 * message and its sender as it finds them.
 */
export type DeletionAudit = Omit<ModerationRecord, "target_user_id" | "target_message_id">;

export interface ChatListQuery {
  /** An `updated_at` cursor: chats with older activity. */
  before?: string;
  limit: number;
}

/** The chat store. Errors are ChatError: `unavailable` when the database does not answer. */
export interface ChatStore {
  createChat(userId: string, vendorId: string): Promise<{ chat: Chat; created: boolean }>;
  getChat(chatId: string): Promise<Chat | null>;
  /** The chats of these ids that exist, in no particular order: one query for them all. */
  getChats(chatIds: readonly string[]): Promise<Chat[]>;
  /** The chats created within `window`, oldest first. */
  chatsCreatedWithin(window: RecentWindow): Promise<Chat[]>;
  /** The user's side in the chat, or null (unknown chat or not a participant). */
  membership(chatId: string, userId: string): Promise<Membership | null>;
  /**
   * The user's side in each of these chats that they are a participant of, in no particular
   * order: one query for them all (the others are left out).
   */
  memberships(chatIds: readonly string[], userId: string): Promise<Membership[]>;
  /** Every chat the user is a participant of, on either side. */
  chatsOf(userId: string): Promise<Membership[]>;
  /** Vendors the user is a member of. */
  vendorsOf(userId: string): Promise<string[]>;
  isVendorMember(vendorId: string, userId: string): Promise<boolean>;
  listChatsOf(userId: string, query: ChatListQuery): Promise<Page<ChatSummary>>;
  /** listChatsOf, asked for by the user (see Asker): refused when they are banned. */
  listChatsAsked(userId: string, query: ChatListQuery): Promise<AskedRead<Page<ChatSummary>>>;
  lastSeqs(chatIds: readonly string[]): Promise<Map<string, number>>;

  /**
   * Stores a message with the next seq. `forbidden` when the sender is banned or not in the chat
   * (its customer, its vendor or a member of its vendor), a retry of a stored client_id included.
   */
  insertMessage(message: NewMessage): Promise<InsertedMessage>;
  /**
   * The message the sender sent in the chat with this client_id; null when none. With
   * `afterWritesUnderWay`, a write of the chat under way (another instance's batch, say) is
   * waited for first, so that a message it stores is found.
   */
  messageByClientId(
    chatId: string,
    senderId: string,
    clientId: string,
    options?: { afterWritesUnderWay?: boolean },
  ): Promise<StoredMessage | null>;
  history(chatId: string, query: HistoryQuery): Promise<Page<StoredMessage>>;
  /** A history page asked for by a user (see Asker), with the chat's id as stored. */
  historyAsked(
    asker: ChatAsker,
    query: HistoryQuery,
  ): Promise<AskedRead<Page<StoredMessage> & { chat_id: string }>>;
  /** Messages of the chat with seq in [from, to], oldest first. */
  messagesBetween(chatId: string, fromSeq: number, toSeq: number): Promise<StoredMessage[]>;
  /** Messages of these chats edited or deleted within `window`, as they are now, by chat and seq. */
  amendedWithin(chatIds: readonly string[], window: RecentWindow): Promise<StoredMessage[]>;
  /**
   * Read marks of these chats' messages made within `window`, at most `limit`, the newest; by
   * chat and seq. Marks of deleted messages are left out.
   */
  readWithin(
    chatIds: readonly string[],
    window: RecentWindow,
    limit: number,
  ): Promise<StoredRead[]>;
  /**
   * The read marks of these chats' messages made within `window`, summed per chat that has any
   * (deleted messages' marks too), with the window's bounds on the store's clock: what a sweep
   * compares with the marks it delivered before it reads the marks themselves.
   */
  readTallies(chatIds: readonly string[], window: RecentWindow): Promise<ReadTallies>;
  unread(chatId: string, side: Side, limit: number): Promise<StoredUnread>;
  /**
   * The unread of the asking user's side (see Asker; their side as sideOf has it), with the
   * chat's id as stored.
   */
  unreadAsked(
    asker: ChatAsker,
    limit: number,
  ): Promise<AskedRead<StoredUnread & { chat_id: string }>>;
  getMessage(messageId: string): Promise<StoredMessage | null>;
  /**
   * Marks one message read by `readerId` when it was sent by the other side of `readerSide`;
   * `changed` is false when it already was read or was sent by the reader's own side. Null: no
   * such message, or the reader is banned or no longer in the chat.
   */
  markRead(
    chatId: string,
    messageId: string,
    readerSide: Side,
    readerId: string,
  ): Promise<{ message: StoredMessage; changed: boolean } | null>;
  /**
   * Marks read by `readerId` every message of the other side up to `seq` not yet read: `count`
   * of them, the newest `up_to_seq` (0 when none; never more than `seq`). Errors: forbidden
   * (the reader is banned or no longer in the chat).
   */
  markReadUpTo(
    chatId: string,
    readerSide: Side,
    seq: number,
    readerId: string,
  ): Promise<{ count: number; up_to_seq: number; read_at: string }>;
  /**
   * Tombstones a message, in one statement that names, when it changed it, the chat's parties;
   * `changed` is false when it already was deleted, null when there is no such message. With
   * `audit`, the moderation is recorded in the same statement when the message exists, aimed at
   * it and its sender.
   */
  deleteMessage(
    messageId: string,
    deletedBy: string,
    options?: { audit?: DeletionAudit },
  ): Promise<MessageChange | null>;
  /**
   * Tombstones the asker's own message of their chat (see Asker), checked in the same statement
   * as the change: a ban or a removal the socket has not heard of refuses it. `changed` is false
   * when it already was deleted (a tombstone of their own is theirs to delete again); changed, the
   * answer names the chat's parties, so that the change is told with no read of the chat besides.
   */
  deleteOwnMessage(asker: ChatAsker, messageId: string): Promise<OwnChange>;
  /**
   * Changes the content of the asker's own text message of their chat, checked as
   * deleteOwnMessage; `changed` false when it has that text already (compared under the row's
   * lock: an edit under way is waited for).
   */
  editOwnMessage(asker: ChatAsker, messageId: string, content: string): Promise<OwnChange>;

  addVendorMember(vendorId: string, userId: string, role: VendorRole): Promise<VendorMember>;
  removeVendorMember(vendorId: string, userId: string): Promise<boolean>;
  /** The vendor members added within `window` and members still. */
  membersAddedWithin(window: RecentWindow): Promise<Array<{ vendor_id: string; user_id: string }>>;
  /** The vendor members removed within `window` and not members again since. */
  membersRemovedWithin(
    window: RecentWindow,
  ): Promise<Array<{ vendor_id: string; user_id: string }>>;
  listVendorMembers(vendorId: string): Promise<VendorMember[]>;

  activeBan(userId: string): Promise<Ban | null>;
  /** Of `userIds`, the ones banned now or ever disconnected by an operator, in one query. */
  sanctionsOf(userIds: readonly string[]): Promise<Map<string, Sanction>>;
  /** The users banned or disconnected by an operator within `window`, by the moderation log. */
  sanctionedWithin(window: RecentWindow): Promise<string[]>;
  /**
   * Bans the user for `duration_seconds` from now on the database's clock, which tells when a
   * ban is in force (null: until lifted); with `audit`, records the moderation in the same
   * transaction.
   */
  ban(
    ban: Omit<Ban, "created_at" | "expires_at"> & { duration_seconds: number | null },
    options?: { audit?: ModerationRecord },
  ): Promise<Ban>;
  /**
   * Lifts the user's ban; false when none is in force (one that has run out is not). With
   * `audit`, records the moderation in the same transaction when a ban was lifted.
   */
  unban(userId: string, options?: { audit?: ModerationRecord }): Promise<boolean>;
  recordModeration(action: ModerationRecord): Promise<ModerationAction>;

  /** Records a stored file as sent in a chat (and its blob in the catalogue, once). */
  createMedia(media: NewMedia): Promise<MediaRecord>;
  /** A media row with its usage by messages; null when unknown. */
  getMedia(mediaId: string): Promise<MediaEntry | null>;
  /** Deletes a media row no message carries (its blob stays); false when none was deleted. */
  deleteUnsentMedia(mediaId: string): Promise<boolean>;
}

/** Where the next page of a keyset-paged list starts; null on the last page. */
export interface KeysetPage<T, C> {
  items: T[];
  next: C | null;
}

/** A position in a list ordered by (created_at desc, key desc); `at` is exact to the microsecond. */
export interface TimeCursor {
  at: string;
  key: string;
}

/**
 * A position in a search result: (rank desc, created_at desc, seq desc, id desc). Messages
 * written in one group commit share created_at, so seq puts a chat's equal matches newest first.
 */
export interface SearchCursor extends TimeCursor {
  rank: number;
  seq: number;
}

export interface ChatsQuery {
  user_id?: string;
  vendor_id?: string;
  limit: number;
  after?: TimeCursor;
}

export interface MessagesQuery {
  chat_id: string;
  include_deleted: boolean;
  limit: number;
  /** Messages with a lower seq (newest first). */
  before_seq?: number;
}

export interface SearchQuery {
  /** User words, read by `websearch_to_tsquery`. */
  text: string;
  chat_id?: string;
  sender_id?: string;
  /** Inclusive lower bound, ISO-8601. */
  created_after?: string;
  /** Exclusive upper bound, ISO-8601. */
  created_before?: string;
  include_deleted: boolean;
  limit: number;
  after?: SearchCursor;
}

export interface ModerationQuery {
  moderator_id?: string;
  target_user_id?: string;
  limit: number;
  after?: TimeCursor;
}

/**
 * The admin plane's read side: lists and search the WebSocket plane never needs, paged by
 * keyset. Errors are ChatError: `unavailable` when the database does not answer,
 * `invalid_payload` (path `query`) when a search has no words to look for.
 */
export interface AdminStore {
  /** Chats, newest first. */
  listChats(query: ChatsQuery): Promise<KeysetPage<Chat, TimeCursor>>;
  /** Messages of one chat, newest first. */
  listMessages(query: MessagesQuery): Promise<KeysetPage<StoredMessage, number>>;
  /**
   * Full-text search, best match first, then newest first. Once `signal` aborts (the caller has
   * gone), the search is cancelled in the database and answered `unavailable`.
   */
  searchMessages(
    query: SearchQuery,
    options?: { signal?: AbortSignal },
  ): Promise<KeysetPage<StoredMessage, SearchCursor>>;
  /** Bans in force, newest first. */
  listBans(query: { limit: number; after?: TimeCursor }): Promise<KeysetPage<Ban, TimeCursor>>;
  /** The moderation audit log, newest first. */
  listModerationActions(
    query: ModerationQuery,
  ): Promise<KeysetPage<ModerationAction, TimeCursor>>;
  /**
   * Totals over the whole database. Once `signal` aborts (the caller has gone), the count is
   * cancelled in the database and answered `unavailable`.
   */
  stats(options?: { signal?: AbortSignal }): Promise<{ chats: number; messages: number }>;
}

export interface NewMedia {
  chat_id: string;
  uploader_id: string;
  media_type: MediaKind;
  sha256: string;
  mime_type: string;
  size: number;
}

/** A file as sent: base64 from a frame, or the body of an upload with its declared length. */
export type MediaBody =
  | { base64: string }
  | { stream: ReadableStream<Uint8Array>; length: number | null };

/** Bytes `start` to `end` of a file, both included (as in HTTP `Range`). */
export interface ByteRange {
  start: number;
  end: number;
}

/** A file in the media store, named by its content. */
export interface StoredBlob {
  sha256: string;
  /** Detected from the magic bytes, never the sender's word. */
  mime: string;
  size: number;
  kind: MediaKind;
}

/** Media bytes (media/media_port.ts implements it over a media store). Errors are ChatError. */
export interface MediaPort {
  /**
   * Checks a file's size (before anything is stored) and its type by its magic bytes against
   * `kind` (null: any accepted kind, read from the bytes), then stores it once per content.
   * Errors: invalid_payload (broken base64), payload_too_large, unsupported_media, unavailable.
   */
  ingest(body: MediaBody, kind: MediaKind | null): Promise<StoredBlob>;
  /** The bytes of a stored file, or a range of them, streamed. Errors: not_found, unavailable. */
  open(sha256: string, range: ByteRange | null): Promise<ReadableStream<Uint8Array>>;
  /** Whether a file's bytes are stored. Errors: unavailable. */
  exists(sha256: string): Promise<boolean>;
}
