import { z } from "zod";
import { messageSchema } from "../chat/types.ts";
import { type Action, actions, clientFrameSchemas } from "../ws/frames.ts";
import { chatSummarySchema, serverFrameSchema, type ServerFrameType } from "./server_frames.ts";

/**
 * The machine-readable protocol description, generated from the zod schemas the service
 * validates with (`deno task protocol` writes it to docs/protocol/, CI checks it is current):
 * a JSON Schema (2020-12) of the frames each way, and an AsyncAPI 3 document of the
 * WebSocket plane whose payloads are the same schemas (draft-07, AsyncAPI's own format).
 */

/** protocol.md's "result" column, and the frames' meaning. */
const actionSummaries: Record<Action, string> = {
  ping: "Keep-alive; nothing is sent back.",
  load_latest_chat: "A page of history (`before_seq`, `after_seq`): answered with `latest_chat`.",
  send_message:
    "Stores a message: `chat_message` to all participants, `ack` with the message to the sender. Exactly one of `content`/`image`/`audio`/`video` (or `media_id`), matching `media_type`; media is base64, a `data:` prefix is accepted. The same `client_id` never makes a second message.",
  read_message:
    "Marks one message read (receiver's side only): `message_read` to all participants.",
  read_up_to:
    "Marks every message to the reader's side up to `seq` read: `messages_read` to all participants.",
  delete_message: "Tombstones the sender's own message: `message_deleted` to all participants.",
  edit_message:
    "Edits the sender's own text message: `message_edited` to all participants (none when the text is unchanged).",
  unread_message: "Asks for this user's unread messages: answered with `unread_messages`.",
  typing:
    "Typing on or off: `typing` to the other participants' sockets, never stored; a socket that closes while on, or loses the chat (a vendor membership revoked), says off.",
  list_chats:
    "A page of the user's chats (`before`, an `updated_at` cursor): answered with `chats`.",
};

const frameSummaries: Record<ServerFrameType, string> = {
  latest_chat: "A page of messages, oldest first; sent unasked when a chat socket opens.",
  chats: "The user's chats, newest activity first; sent unasked when `/v1/ws/chats/` opens.",
  chat_message: "A new message, to every participant, in `seq` order within the chat.",
  message_read: "One message was read.",
  messages_read:
    "Every message to the reader's side up to `up_to_seq` was read; `up_to_seq` is the newest one the mark changed (at most the `seq` asked), and the event follows that message.",
  message_deleted: "A message was deleted (tombstoned).",
  message_edited: "A text message was edited.",
  typing: "Another participant started or stopped typing.",
  unread_messages:
    "This user's unread count and newest unread messages; pushed after each new message to the receiver's side.",
  ack: "The action with this `request_id` succeeded.",
  error: "An action failed; the socket stays open.",
};

type Target = "draft-2020-12" | "draft-7";
type Schema = Record<string, unknown>;

/** The named schemas of frames one way, with refs between them written by `uri`. */
function definitions(
  direction: "client" | "server",
  target: Target,
  uri: (id: string) => string,
): Record<string, Schema> {
  const registry = z.registry<{ id: string }>();
  const descriptions: Record<string, string> = {};
  if (direction === "client") {
    for (const action of actions) {
      registry.add(clientFrameSchemas[action], { id: action });
      descriptions[action] = actionSummaries[action];
    }
  } else {
    registry.add(messageSchema, { id: "Message" });
    descriptions.Message =
      "A message as clients see it; deleted ones have null content and media_url.";
    registry.add(chatSummarySchema, { id: "ChatSummary" });
    descriptions.ChatSummary = "One row of `chats`.";
    for (const option of serverFrameSchema.options) {
      const type = option.shape.type.value;
      registry.add(option, { id: type });
      descriptions[type] = frameSummaries[type];
    }
  }
  // what a client writes is the schemas' input; what a server writes, their output
  const io = direction === "client" ? "input" : "output";
  const { schemas } = z.toJSONSchema(registry, { target, io, uri });
  return Object.fromEntries(
    Object.entries(schemas).map(([id, schema]) => {
      const { $schema: _, $id: __, ...rest } = schema as Schema;
      return [id, { description: descriptions[id], ...rest }];
    }),
  );
}

const frameIds = {
  client: [...actions] as string[],
  server: serverFrameSchema.options.map((option) => option.shape.type.value) as string[],
};

/** JSON Schema (2020-12) of the frames one way: one of `$defs`, discriminated on action/type. */
export function frameSchemaDocument(direction: "client" | "server"): Schema {
  const defs = definitions(direction, "draft-2020-12", (id) => `#/$defs/${id}`);
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    $id: `${direction}-frames.schema.json`,
    title: direction === "client" ? "Frames from the client" : "Frames from the server",
    description: direction === "client"
      ? "Every frame a client may send on the chat service's WebSocket plane: a JSON text object with `action`. Unknown fields are ignored; a field given as null counts as absent. Generated from ws/frames.ts by `deno task protocol`."
      : "Every frame the chat service sends on its WebSocket plane: a JSON text object with `type`. Generated from protocol/server_frames.ts by `deno task protocol`.",
    oneOf: frameIds[direction].map((id) => ({ $ref: `#/$defs/${id}` })),
    $defs: defs,
  };
}

const SHARED = new Set(["Message", "ChatSummary"]);
/** AsyncAPI component names: frames are namespaced by direction (`typing` is both). */
const componentName = (direction: "client" | "server", id: string) =>
  SHARED.has(id) ? id : `${direction}.${id}`;

/** Which server frames each endpoint can send. */
const channelFrames: Record<"chat" | "chats", readonly ServerFrameType[]> = {
  chat: [
    "latest_chat",
    "unread_messages",
    "chat_message",
    "message_read",
    "messages_read",
    "message_deleted",
    "message_edited",
    "typing",
    "ack",
    "error",
  ],
  chats: [
    "chats",
    "latest_chat",
    "unread_messages",
    "chat_message",
    "message_read",
    "messages_read",
    "message_deleted",
    "message_edited",
    "typing",
    "ack",
    "error",
  ],
};
const channelActions: Record<"chat" | "chats", readonly Action[]> = {
  chat: actions.filter((action) => action !== "list_chats"),
  chats: actions,
};
/** The frame that answers an action besides `ack`/`error`. */
const answers: Partial<Record<Action, ServerFrameType>> = {
  load_latest_chat: "latest_chat",
  unread_message: "unread_messages",
  list_chats: "chats",
};

/** The AsyncAPI 3.0 document of the WebSocket plane, described from the server's side. */
export function asyncApiDocument(): Schema {
  const schemas: Record<string, Schema> = {};
  const messages: Record<string, Schema> = {};
  for (const direction of ["client", "server"] as const) {
    const defs = definitions(
      direction,
      "draft-7",
      (id) => `#/components/schemas/${componentName(direction, id)}`,
    );
    for (const [id, schema] of Object.entries(defs)) schemas[componentName(direction, id)] = schema;
    for (const id of frameIds[direction]) {
      const name = componentName(direction, id);
      messages[name] = {
        name: id,
        title: direction === "client" ? `action ${id}` : `${id} frame`,
        summary: direction === "client"
          ? actionSummaries[id as Action]
          : frameSummaries[id as ServerFrameType],
        payload: { $ref: `#/components/schemas/${name}` },
      };
    }
  }

  const channels: Record<string, Schema> = {};
  const operations: Record<string, Schema> = {};
  const ref = (path: string) => ({ $ref: path });
  for (const channel of ["chat", "chats"] as const) {
    const names = [
      ...channelActions[channel].map((action) => componentName("client", action)),
      ...channelFrames[channel].map((type) => componentName("server", type)),
    ];
    channels[channel] = {
      address: channel === "chat" ? "/v1/ws/chat/{chat_id}/" : "/v1/ws/chats/",
      title: channel === "chat" ? "One chat" : "Every chat of the user",
      description: channel === "chat"
        ? "After auth (else close 4401) and a participant check (else close 4403), the server sends `latest_chat` then `unread_messages`."
        : "After auth (else close 4401; banned: 4403) the server sends `chats`. Every action but `ping` needs `chat_id`.",
      ...(channel === "chat"
        ? { parameters: { chat_id: { description: "The chat's id (a uuid)." } } }
        : {}),
      messages: Object.fromEntries(
        names.map((name) => [name, ref(`#/components/messages/${name}`)]),
      ),
      bindings: { ws: { bindingVersion: "0.1.0", query: { $ref: "#/components/schemas/Auth" } } },
    };
    const inChannel = (name: string) => ref(`#/channels/${channel}/messages/${name}`);
    for (const action of channelActions[channel]) {
      const answer = answers[action];
      operations[`${channel}.receive.${action}`] = {
        action: "receive",
        channel: ref(`#/channels/${channel}`),
        summary: actionSummaries[action],
        messages: [inChannel(componentName("client", action))],
        ...(action === "ping" ? {} : {
          reply: {
            channel: ref(`#/channels/${channel}`),
            messages: [
              ...(answer ? [inChannel(componentName("server", answer))] : []),
              inChannel("server.ack"),
              inChannel("server.error"),
            ],
          },
        }),
      };
    }
    for (const type of channelFrames[channel]) {
      if (type === "ack" || type === "error") continue;
      operations[`${channel}.send.${type}`] = {
        action: "send",
        channel: ref(`#/channels/${channel}`),
        summary: frameSummaries[type],
        messages: [inChannel(componentName("server", type))],
      };
    }
  }
  schemas.Auth = {
    type: "object",
    description:
      "A JWT as `?token=` (browsers) or an `Authorization: Bearer` header. Close codes: 4401 token, 4403 not a participant or banned, 4408 operator, 4429 too many sockets, 1009 frame too large, 1012 restart (reconnect).",
    properties: { token: { type: "string" } },
  };

  return {
    asyncapi: "3.0.0",
    info: {
      title: "Chat service: WebSocket plane",
      version: "1.0.0",
      description:
        "Customers and vendors chat over WebSocket. Every frame is a JSON text object: `action` from the client, `type` from the server; `request_id` is echoed on the `ack` or `error` an action causes. Generated from the zod schemas by `deno task protocol`; the prose contract is shared/spec/protocol.md.",
    },
    defaultContentType: "application/json",
    servers: {
      development: {
        host: "localhost:8000",
        protocol: "ws",
        description: "`deno task dev`",
      },
    },
    channels,
    operations,
    components: { schemas, messages },
  };
}

/** Every generated file, by its path under docs/protocol/, as it is written. */
export function protocolDocuments(): Record<string, string> {
  const text = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;
  return {
    "client-frames.schema.json": text(frameSchemaDocument("client")),
    "server-frames.schema.json": text(frameSchemaDocument("server")),
    "asyncapi.json": text(asyncApiDocument()),
  };
}
