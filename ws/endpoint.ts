/** Which endpoint the socket came in on. */
export type Endpoint = { kind: "chat"; chatId: string } | { kind: "chats" };

const CHAT_PATH = /^\/v1\/ws\/chat\/([^/]+)\/?$/;
const CHATS_PATH = /^\/v1\/ws\/chats\/?$/;

/** The WebSocket endpoint `pathname` names; null when it names none. */
export function endpointOf(pathname: string): Endpoint | null {
  const chat = CHAT_PATH.exec(pathname);
  // a uuid's canonical form is lower case, the form memberships and events carry
  if (chat) return { kind: "chat", chatId: decodeSegment(chat[1]!).toLowerCase() };
  if (CHATS_PATH.test(pathname)) return { kind: "chats" };
  return null;
}

/**
 * A path segment with its percent-escapes decoded (`%2D` is `-`, RFC 3986 §6.2.2.2); a
 * malformed escape leaves it as it is: an id nothing has.
 */
export function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}
