/**
 * The WebSocket contract in code: the zod schemas of every frame, both ways, and the close
 * codes. Pure (zod only), so that the server, the client library (also in browsers) and
 * the generated documents share one definition.
 */
import type { z } from "zod";
import type { Action, clientFrameSchemas } from "../ws/frames.ts";

export { type Action, actions, clientFrameSchemas } from "../ws/frames.ts";
export { chatFrameSchema } from "../chat/events.ts";
export { type MediaType, mediaTypeSchema, type Message, messageSchema } from "../chat/types.ts";
export * from "./server_frames.ts";
export { CloseCode } from "./close_codes.ts";

/** A frame a client may send for `action`, as written (before the server's defaults). */
export type ActionFrame<A extends Action> = z.input<(typeof clientFrameSchemas)[A]>;
/** Any frame a client may send. */
export type AnyActionFrame = { [A in Action]: ActionFrame<A> }[Action];
