/**
 * The chat service's client library: typed actions and events (from the contract's zod
 * schemas), promises for requests, reconnection with backoff, gap filling and an outbox.
 * No server code: it runs in Deno and, bundled, in browsers.
 *
 * ```ts
 * const client = createChatClient({ url: "http://localhost:8000", token, chatId });
 * client.on("chat_message", ({ message }) => console.log(message.seq, message.content));
 * await client.request({ action: "send_message", receiver_id, media_type: "text", content: "hi" });
 * await client.close();
 * ```
 */
export { type ChatClient, type ChatClientOptions, createChatClient } from "./chat_client.ts";
export { socketUrl } from "./socket_url.ts";
export { backoffDelay, type BackoffOptions } from "./backoff.ts";
export { reconnectsAfter } from "./close_policy.ts";
export {
  ClientClosedError,
  ConnectionLostError,
  RequestError,
  RequestTimeoutError,
} from "./errors.ts";
export type { RequestOptions } from "./requests.ts";
export type * from "./types.ts";
export type {
  Action,
  ActionFrame,
  ChatSummary,
  MediaType,
  WireErrorCode,
} from "../protocol/mod.ts";
// what the client hands the application: a later server's error codes and media types kept
export type {
  ErrorCode,
  Open,
  ReceivedFrame as ServerFrame,
  ReceivedFrameOf as ServerFrameOf,
  ReceivedMediaType,
  ReceivedMessage as Message,
} from "./received_frames.ts";
export { CloseCode } from "../protocol/mod.ts";
