/** The bus subjects of one deployment. */
export interface Subjects {
  /** Events of one chat. */
  chat(chatId: string): string;
  /** Events for one user wherever they are connected (bans, disconnects, new chats). */
  user(userId: string): string;
  /** Every chat's events, for listeners that follow them all. */
  readonly allChats: string;
  /** Every user's events: one subscription per instance, routed to sockets in memory. */
  readonly allUsers: string;
  /** Requests that every instance check its sockets' access against the store. */
  readonly resync: string;
}

const prefixShape = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/;
const encoder = new TextEncoder();

/**
 * Names subjects under `prefix` (dot-separated tokens of `[A-Za-z0-9_-]`); throws a plain Error
 * naming a prefix of any other shape. Ids are opaque, so each becomes one token that cannot
 * hold `.`, `*`, `>` or spaces, and two different ids never share a subject. `chat()` and
 * `user()` throw a plain Error on an empty id or one with a lone surrogate, which have no
 * such token.
 */
export function createSubjects(prefix: string): Subjects {
  if (!prefixShape.test(prefix)) {
    throw new Error(`invalid bus subject prefix: ${JSON.stringify(prefix)}`);
  }
  return {
    chat: (chatId) => `${prefix}.chat.${token(chatId)}`,
    user: (userId) => `${prefix}.user.${token(userId)}`,
    allChats: `${prefix}.chat.*`,
    allUsers: `${prefix}.user.*`,
    resync: `${prefix}.resync`,
  };
}

/** base64url of the UTF-8 bytes, unpadded: injective, and only `[A-Za-z0-9_-]`. */
function token(id: string): string {
  // An empty id would leave an empty token, which NATS refuses.
  if (id.length === 0) throw new Error("a bus subject id must not be empty");
  // UTF-8 turns every lone surrogate into U+FFFD, so two ids would share one token.
  if (!id.isWellFormed()) throw new Error("a bus subject id must be well-formed Unicode");
  return encoder.encode(id).toBase64({ alphabet: "base64url", omitPadding: true });
}
