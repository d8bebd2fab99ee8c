/**
 * The socket URL of an endpoint under `base`, with the token in the query (as browsers must).
 * Throws TypeError when `base` is not an absolute `http(s)://` or `ws(s)://` URL.
 */
export function socketUrl(base: string | URL, chatId: string | undefined, token: string): string {
  const root = new URL(base);
  if (!["http:", "https:", "ws:", "wss:"].includes(root.protocol)) {
    throw new TypeError(`${root.href}: not an http(s):// or ws(s):// URL`);
  }
  if (!root.pathname.endsWith("/")) root.pathname += "/";
  const path = chatId === undefined ? "v1/ws/chats/" : `v1/ws/chat/${encodeURIComponent(chatId)}/`;
  const url = new URL(path, root);
  if (url.protocol === "http:") url.protocol = "ws:";
  else if (url.protocol === "https:") url.protocol = "wss:";
  url.searchParams.set("token", token);
  return url.href;
}
