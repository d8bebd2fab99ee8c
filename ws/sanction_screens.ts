import type { RecentWindow } from "../chat/ports.ts";
import { recentPastSweep, repeatEvery } from "../chat/feed_sweep.ts";
import type { Sanction } from "../chat/types.ts";

/**
 * How one socket's screen ended: let go, closed by it, already closed (by its client or a
 * shutdown), or let go unscreened because the store did not answer.
 */
export type ScreenOutcome = "kept" | "closed" | "gone" | "unanswered";

/** A socket that can wait, sending nothing, while its user's sanctions are read. */
export interface Screenable {
  readonly userId: string;
  /** Holds every event until `screened(screen, …)`; false when the socket is closed. */
  holdUntilScreened(screen: number): boolean;
  /**
   * The sanctions are read (undefined: none, or not known): the socket closes when they concern
   * it; otherwise, unless a later screen holds it, what it held goes out.
   */
  screened(screen: number, sanction: Sanction | undefined): "kept" | "closed" | "gone";
}

export interface SanctionScreenDeps {
  /** Of `userIds`, the sanctioned ones (ChatService.sanctionsOf). */
  sanctionsOf(userIds: readonly string[]): Promise<Map<string, Sanction>>;
  /**
   * The read failed (the store answers within its timeout): the sockets go on unscreened, their
   * own checks still to come.
   */
  onError: (error: unknown) => void;
  /** Told after each screen, with how many sockets ended each way; `swept`: a sweep's. */
  onScreened?: (outcomes: Record<ScreenOutcome, number>, swept: boolean) => void;
}

/**
 * Screens of every open socket against bans and operator disconnects, when user events may have
 * been lost on the bus (ChatFeed.requestResync). Each socket's own access check comes in turn,
 * a few at a time; until then, what the instance catches up from the store would reach a user
 * banned meanwhile. So every socket holds its events for one query, the sanctions of all their
 * users at once (tens of milliseconds for 10,000 sockets: `deno task bench:sanctions`), and a
 * banned or disconnected user's sockets close before anything held goes out. The same hold and
 * read confirm a ban's event against the store for its user's sockets (confirmBan).
 */
export function createSanctionScreens(
  sockets: () => Iterable<Screenable>,
  deps: SanctionScreenDeps,
) {
  let screens = 0;

  /**
   * Holds the sockets of `users` (undefined: every one) at once, synchronously, then lets each go
   * or closes it; when the store does not answer, each is judged by `unanswered`. Undefined when
   * none was held.
   */
  async function run(
    users: ReadonlySet<string> | undefined,
    unanswered: Sanction | undefined,
  ): Promise<Record<ScreenOutcome, number> | undefined> {
    const screen = ++screens;
    const held = [...sockets()].filter((socket) =>
      (users === undefined || users.has(socket.userId)) && socket.holdUntilScreened(screen)
    );
    if (held.length === 0) return undefined;
    let sanctions: Map<string, Sanction> | undefined;
    try {
      sanctions = await deps.sanctionsOf(held.map((socket) => socket.userId));
    } catch (error) {
      deps.onError(error);
    }
    const outcomes = { kept: 0, closed: 0, gone: 0, unanswered: 0 };
    for (const socket of held) {
      const sanction = sanctions === undefined ? unanswered : sanctions.get(socket.userId);
      const outcome = socket.screened(screen, sanction);
      outcomes[outcome === "kept" && sanctions === undefined ? "unanswered" : outcome]++;
    }
    return outcomes;
  }

  return {
    /**
     * Holds every open socket at once (synchronously), or only those of `users` (a sweep's),
     * then lets each go or closes it.
     */
    async screen(users?: ReadonlySet<string>): Promise<void> {
      const outcomes = await run(users, undefined);
      if (outcomes) deps.onScreened?.(outcomes, users !== undefined);
    },

    /**
     * A ban's event was heard: the user's sockets here hold their events for one read of the
     * store, and close (4403) if a ban is in force. An event may come late, after the ban was
     * lifted or ran out and the user came back; when the store does not answer, it is believed.
     */
    async confirmBan(userId: string): Promise<void> {
      await run(new Set([userId]), { banned: true, disconnectedOn: null });
    },
  };
}

/**
 * Every `periodMs`, the users the store says were banned or disconnected by an operator before
 * the last period (their events, if published, came by then), back to a period before the
 * previous look: for a ban or a disconnect whose event never came, because its instance ended
 * between the commit and the publish, or NATS lost it without anyone noticing. Those of them
 * with sockets here are screened (their sockets held for one query), so such sockets close
 * within three periods; when none has, the look is all it costs.
 */
export function startSanctionSweeps(
  deps: {
    sanctionedWithin(window: RecentWindow): Promise<string[]>;
    /** Whether the user has a socket open here. */
    connected(userId: string): boolean;
    screen(users: ReadonlySet<string>): Promise<void>;
    /** A look that failed; the first of a run of them only. */
    onError: (error: unknown, context: string) => void;
  },
  periodMs: number,
) {
  const look = recentPastSweep(async (window) => {
    const users = await deps.sanctionedWithin(window);
    const here = new Set(users.filter((userId) => deps.connected(userId)));
    if (here.size > 0) await deps.screen(here);
  }, { periodMs, context: "sanction sweep", onError: deps.onError });
  return repeatEvery(periodMs, look);
}
