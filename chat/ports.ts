import type {
  Ban,
  Chat,
  ChatSummary,
  MediaType,
  Membership,
  ModerationAction,
  Side,
  StoredMessage,
  VendorMember,
  VendorRole,
} from "./types.ts";

/** What the domain needs from the outside world; db/ and bus/ implement it. */

/** The event channel between instances (bus/bus.ts implements it). */
export interface EventBus {
  publish(subject: string, payload: Uint8Array): void;
  subscribe(subject: string, handler: (payload: Uint8Array, subject: string) => void): () => void;
  /** Round trip to the transport: subscriptions made before it are in force after it. */
  check(signal?: AbortSignal): Promise<boolean>;
}

/** Bus subject names (bus/subjects.ts implements it). */
export interface Subjects {
  chat(chatId: string): string;
  user(userId: string): string;
  readonly allChats: string;
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

export interface ChatListQuery {
  /** An `updated_at` cursor: chats with older activity. */
  before?: string;
  limit: number;
}

/** The chat store. Errors are ChatError: `unavailable` when the database does not answer. */
export interface ChatStore {
  createChat(userId: string, vendorId: string): Promise<{ chat: Chat; created: boolean }>;
  getChat(chatId: string): Promise<Chat | null>;
  /** The user's side in the chat, or null (unknown chat or not a participant). */
  membership(chatId: string, userId: string): Promise<Membership | null>;
  /** Every chat the user is a participant of, on either side. */
  chatsOf(userId: string): Promise<Membership[]>;
  /** Vendors the user is a member of. */
  vendorsOf(userId: string): Promise<string[]>;
  isVendorMember(vendorId: string, userId: string): Promise<boolean>;
  listChatsOf(userId: string, query: ChatListQuery): Promise<Page<ChatSummary>>;
  lastSeqs(chatIds: readonly string[]): Promise<Map<string, number>>;

  /** Stores a message with the next seq. `forbidden` when the sender is banned. */
  insertMessage(message: NewMessage): Promise<InsertedMessage>;
  history(chatId: string, query: HistoryQuery): Promise<Page<StoredMessage>>;
  /** Messages of the chat with seq in [from, to], oldest first. */
  messagesBetween(chatId: string, fromSeq: number, toSeq: number): Promise<StoredMessage[]>;
  unread(chatId: string, side: Side, limit: number): Promise<UnreadSnapshot>;
  getMessage(messageId: string): Promise<StoredMessage | null>;
  /**
   * Marks one message read when it was sent by the other side of `readerSide`; `changed` is
   * false when it already was read or was sent by the reader's own side. Null: no such message.
   */
  markRead(
    chatId: string,
    messageId: string,
    readerSide: Side,
  ): Promise<{ message: StoredMessage; changed: boolean } | null>;
  markReadUpTo(
    chatId: string,
    readerSide: Side,
    seq: number,
  ): Promise<{ count: number; read_at: string }>;
  /** Tombstones a message; `changed` is false when it already was deleted. */
  deleteMessage(
    messageId: string,
    deletedBy: string,
  ): Promise<{ message: StoredMessage; changed: boolean } | null>;
  editMessage(messageId: string, content: string): Promise<StoredMessage | null>;

  addVendorMember(vendorId: string, userId: string, role: VendorRole): Promise<VendorMember>;
  removeVendorMember(vendorId: string, userId: string): Promise<boolean>;
  listVendorMembers(vendorId: string): Promise<VendorMember[]>;

  activeBan(userId: string): Promise<Ban | null>;
  ban(ban: Omit<Ban, "created_at">): Promise<Ban>;
  unban(userId: string): Promise<boolean>;
  recordModeration(action: Omit<ModerationAction, "id" | "created_at">): Promise<ModerationAction>;

  /** True while the database answers. */
  check(signal?: AbortSignal): Promise<boolean>;
}
