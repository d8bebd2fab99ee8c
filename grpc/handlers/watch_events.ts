import { Metadata, type ServerWritableStream, status as Status } from "@grpc/grpc-js";
import { z } from "zod";
import type { ChatEnvelope } from "../../chat/events.ts";
import type { EventBus, Subjects } from "../../chat/ports.ts";
import type { ChatService } from "../../chat/service.ts";
import type { ProtoChatEvent } from "../convert.ts";
import type { EventHub } from "../event_hub.ts";
import { createEventSink, type EventSink } from "../event_sink.ts";
import { optionalUserId, optionalUuid, parseRequest } from "../requests.ts";

/** Events a stream may fall behind by before it is ended. */
export const DEFAULT_WATCH_BUFFER = 1_000;

/**
 * Streams open at once on an instance, by default. Each may hold up to its buffer of events
 * (about 5 MB of long messages at the default buffer) and costs a filter per event: without a
 * bound, a caller that opens a stream per request and never cancels could take the process's
 * memory and CPU. Internal consumers watch with a few streams each.
 */
export const DEFAULT_MAX_WATCH_STREAMS = 100;

const watchEventsRequest = z.object({ chat_id: optionalUuid, user_id: optionalUserId });
type WatchFilter = z.output<typeof watchEventsRequest>;

export interface WatchDeps {
  service: ChatService;
  hub: EventHub;
  bus: EventBus;
  subjects: Subjects;
  /**
   * Calls the listener whenever an instance asks for a resync: it was cut off from NATS, and
   * what was published meanwhile never reached the streams. Returns the unsubscribe.
   */
  onResync: (listener: () => void) => () => void;
}

function concerns(filter: WatchFilter, envelope: ChatEnvelope, event: ProtoChatEvent): boolean {
  if (filter.chat_id !== undefined && event.chat_id !== filter.chat_id) return false;
  if (filter.user_id === undefined) return true;
  return envelope.chat.user_id === filter.user_id || envelope.chat.vendor_id === filter.user_id ||
    event.user_id === filter.user_id;
}

/**
 * WatchEvents: live chat events from every instance. One chat's events come from that chat's
 * bus subject, all chats' from the wildcard. Response headers go out once the subscription is
 * in force, so a client that waits for them misses nothing published afterwards; a stream
 * that may have missed events (an instance was cut off from NATS) ends with UNAVAILABLE, and
 * one NATS cannot subscribe is refused with it. A stream past `maxStreams` open ones
 * (DEFAULT_MAX_WATCH_STREAMS) ends at once with RESOURCE_EXHAUSTED; a call holds its place from
 * its start (while it looks up its chat too) until grpc-js has sent its end, however it ends.
 */
export function createWatchEvents(
  deps: WatchDeps,
  options: { maxBuffered?: number; maxStreams?: number } = {},
) {
  const maxBuffered = options.maxBuffered ?? DEFAULT_WATCH_BUFFER;
  const maxStreams = options.maxStreams ?? DEFAULT_MAX_WATCH_STREAMS;
  /** Streams under way, written to by the hub. */
  const open = new Set<EventSink<ProtoChatEvent>>();
  /** Places taken: the streams under way and the calls still looking up their chat. */
  let places = 0;
  let closed = false;
  const shuttingDown = {
    code: Status.UNAVAILABLE,
    details: "the server is shutting down; watch again",
  };
  const eventsLost = {
    code: Status.UNAVAILABLE,
    details: "an instance was cut off from NATS and events may be missing: watch again, " +
      "and read what was missed with ListMessages",
  };
  const eventUnreadable = {
    code: Status.UNAVAILABLE,
    details: "an event could not be read and may be missing: watch again, and read what was " +
      "missed with ListMessages",
  };
  const busAway = { code: Status.UNAVAILABLE, details: "NATS does not answer; watch again" };
  const tooMany = {
    code: Status.RESOURCE_EXHAUSTED,
    details: `too many WatchEvents streams open on this instance (at most ${maxStreams}); ` +
      "cancel the ones no longer read, or watch again later",
  };
  // A stream cannot show a gap in what it was sent: one that may have lost events ends.
  const stopHearingResyncs = deps.onResync(() => {
    for (const sink of [...open]) sink.end(eventsLost);
  });

  return {
    /** Serves one call. Rejects (before streaming) with ChatError: invalid_payload, not_found. */
    async WatchEvents(call: ServerWritableStream<unknown, ProtoChatEvent>): Promise<void> {
      const filter = parseRequest(watchEventsRequest, call.request);
      if (closed) return void call.emit("error", shuttingDown);
      // A call holds its place from here, its chat lookup included: a burst of calls must not
      // run past the bound while they look up. Taken with no await since the check.
      if (places >= maxStreams) return void call.emit("error", tooMany);
      places++;
      let held = true;
      const giveBack = () => {
        if (held) places--;
        held = false;
      };
      // the client cancelled or its deadline passed, or the stream is over: grpc-js says
      // "cancelled" once a call's status is sent too, which a client that reads nothing never
      // lets it send (it waits behind the events held for that client)
      let onCancelled = giveBack;
      call.on("cancelled", () => onCancelled());
      try {
        if (filter.chat_id !== undefined) await deps.service.getChat(filter.chat_id);
      } catch (error) {
        giveBack();
        throw error;
      }
      if (call.cancelled) return giveBack();
      // a call that was still looking up its chat when the server began to close
      if (closed) {
        giveBack();
        return void call.emit("error", shuttingDown);
      }
      let leave = () => {};
      const opened = createEventSink<ProtoChatEvent>(call, {
        maxBuffered,
        // the place is kept until the stream is over: an ended stream whose client reads
        // nothing still holds the events grpc-js buffered for it
        onEnd: () => {
          leave();
          open.delete(opened);
        },
      });
      onCancelled = () => {
        opened.abandon();
        giveBack();
      };
      open.add(opened);
      const subject = filter.chat_id === undefined
        ? deps.subjects.allChats
        : deps.subjects.chat(filter.chat_id);
      leave = deps.hub.subscribe(subject, {
        event(envelope, event) {
          if (concerns(filter, envelope, event)) opened.push(event);
        },
        lost: () => opened.end(eventUnreadable),
      });
      // A round trip to the bus: the subscription is now in force on every instance's side.
      const subscribed = await deps.bus.check(AbortSignal.timeout(2_000));
      if (!subscribed) opened.end(busAway);
      if (!opened.ended) call.sendMetadata(new Metadata());
    },

    /** Ends every open stream with UNAVAILABLE (shutdown: watch again elsewhere). */
    closeAll(): void {
      closed = true;
      stopHearingResyncs();
      for (const sink of [...open]) sink.end(shuttingDown);
    },

    /** Places taken on this instance: open streams and calls still looking up their chat. */
    get size(): number {
      return places;
    },
  };
}
