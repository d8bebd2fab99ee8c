import { ServerInterceptingCall, type ServerInterceptor } from "@grpc/grpc-js";
import http2, { type ServerHttp2Session } from "node:http2";
import { streamOf } from "./call_stream.ts";

/**
 * How often a client may ping. nghttp2 answers every PING by itself, and cuts only a client that
 * leaves more than 1,000 answers unread; one that reads them can have the process answer tens of
 * thousands a second, without a token, on the event loop that serves the WebSocket plane too.
 * grpc-js (unlike gRPC's C core and grpc-go) enforces nothing, so this does as they do: a ping is
 * free if the server has sent the connection headers, a message or a status since the one before
 * (grpc-go measures its flow-control window with such pings, one per burst of data it receives);
 * otherwise one sooner than `minIntervalMs` after the one before is a strike, and past
 * `maxStrikes` the connection is closed with GOAWAY ENHANCE_YOUR_CALM "too_many_pings", which
 * grpc-js and grpc-go clients answer by pinging half as often. 10 s is the shortest keepalive
 * grpc-go lets a client set, so no client keepalive (a quiet WatchEvents kept alive through a NAT)
 * is cut.
 */
export const PING_POLICY = { minIntervalMs: 10_000, maxStrikes: 2 };

interface PingState {
  lastPingAt: number;
  strikes: number;
  /** The server sent headers, a message or a status since the last ping. */
  sent: boolean;
}

export interface PingPolicy {
  /** Marks the connections to which calls send something; the first of the interceptors. */
  interceptor: ServerInterceptor;
  /** Follows the pings of a connection, from its start. */
  follow(session: ServerHttp2Session): void;
}

/** The ping policy (PING_POLICY) of the connections of one grpc-js server. */
export function createPingPolicy(policy = PING_POLICY): PingPolicy {
  const sessions = new WeakMap<ServerHttp2Session, PingState>();

  function followSession(session: ServerHttp2Session) {
    const state: PingState = { lastPingAt: -Infinity, strikes: 0, sent: false };
    sessions.set(session, state);
    session.on("ping", () => {
      const now = performance.now();
      const sinceLast = now - state.lastPingAt;
      state.lastPingAt = now;
      if (state.sent) {
        state.sent = false;
        state.strikes = 0;
        return;
      }
      if (sinceLast < policy.minIntervalMs) state.strikes++;
      if (state.strikes > policy.maxStrikes && !session.destroyed) {
        // told why first, as gRPC's own servers say it
        session.goaway(
          http2.constants.NGHTTP2_ENHANCE_YOUR_CALM,
          0,
          new TextEncoder().encode("too_many_pings"),
        );
        session.destroy();
      }
    });
  }

  const interceptor: ServerInterceptor = (_method, call) => {
    const state = sessions.get(streamOf(call)?.session as ServerHttp2Session);
    if (!state) return new ServerInterceptingCall(call);
    return new ServerInterceptingCall(call, {
      sendMetadata(metadata, next) {
        state.sent = true;
        next(metadata);
      },
      sendMessage(message, next) {
        state.sent = true;
        next(message);
      },
      sendStatus(status, next) {
        state.sent = true;
        next(status);
      },
    });
  };

  return {
    interceptor,
    follow: followSession,
  };
}
