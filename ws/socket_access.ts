import { ChatError } from "../chat/errors.ts";
import type { ChatService } from "../chat/service.ts";
import type { Sanction } from "../chat/types.ts";
import type { ServerFrame } from "../protocol/mod.ts";
import type { AccessCheckOutcome } from "./access_checks.ts";
import type { Endpoint } from "./endpoint.ts";
import { CloseCode } from "./errors.ts";
import type { SocketChats } from "./socket_chats.ts";

/** What a check of one socket's access needs of its connection. */
export interface AccessHost {
  readonly userId: string;
  readonly endpoint: Endpoint;
  readonly closed: boolean;
  /**
   * An operator's disconnect of the user, recorded at `disconnectedOn` (the database's clock), was
   * read: true when it ends this socket, as its event would (see ws/operator_disconnects.ts).
   */
  endedByDisconnect(disconnectedOn: string): boolean;
  close(code: number, reason: string): void;
}

/** What a check of one socket's access works with. */
export interface AccessContext {
  connection: AccessHost;
  service: ChatService;
  /** The chats the socket sees: on `/v1/ws/chats/`, read again. */
  chats: SocketChats;
  /** A frame to this socket only. */
  send: (frame: ServerFrame) => void;
  /** Told of failures that are not the store being away. */
  onError: (error: unknown, context: string) => void;
}

/**
 * Closes the socket when `sanction` ends it: with 4403 for a ban in force, with 4408 for an
 * operator's disconnect recorded after the store let the socket in. True when closed.
 */
export function closeIfSanctioned(
  connection: AccessHost,
  sanction: Sanction | undefined,
): boolean {
  if (sanction?.banned) {
    connection.close(CloseCode.forbidden, "banned");
    return true;
  }
  if (sanction?.disconnectedOn != null && connection.endedByDisconnect(sanction.disconnectedOn)) {
    connection.close(CloseCode.operatorDisconnect, "disconnected by an operator");
    return true;
  }
  return false;
}

/**
 * Checks an open socket's access against the store, for user events the bus may have lost (see
 * ChatFeed.requestResync): a user an operator disconnected since the store let the socket in is closed
 * with 4408, a banned user or one no longer in the chat with 4403;
 * on `/v1/ws/chats/` the chats lost are dropped, those gained are taken in, and the list is
 * sent again when it changed. Never rejects: "unanswered" when the store did not answer.
 */
export async function checkAccessAgain(context: AccessContext): Promise<AccessCheckOutcome> {
  const { connection, service } = context;
  try {
    const sanctions = await service.sanctionsOf([connection.userId]);
    // closed meanwhile (by a screen, say): that close is counted there
    if (connection.closed) return "gone";
    if (closeIfSanctioned(connection, sanctions.get(connection.userId))) return "closed";
    if (connection.endpoint.kind === "chat") {
      await service.joinChat(connection.userId, connection.endpoint.chatId);
    } else {
      await context.chats.refreshChatList(context.send);
    }
    // closed meanwhile by its client, or by a shutdown
    return connection.closed ? "gone" : "kept";
  } catch (error) {
    if (error instanceof ChatError && error.code === "forbidden") {
      connection.close(CloseCode.forbidden, error.message);
      return "closed";
    }
    // the access stays as it was until the check runs again; the store being away is
    // reported once for all sockets
    if (!(error instanceof ChatError && error.code === "unavailable")) {
      context.onError(error, "check access");
    }
    return "unanswered";
  }
}
