/**
 * Which operator disconnects (DisconnectUser) end one socket: those recorded after the store let
 * the socket in. A user disconnected may come back at once, to an instance the disconnect's event
 * reaches late; the socket's first read of the store (ChatService.joinChat, joinAllChats) showed
 * the user's newest disconnect then, and only a newer one ends it. Both times are the database's,
 * so no two clocks are compared. A disconnect heard while that read is under way is judged once
 * it answers.
 */
export class OperatorDisconnects {
  /**
   * The newest disconnect the first read showed (ms since the epoch, the database's clock);
   * null: none; undefined: not answered yet.
   */
  #admittedAfter: number | null | undefined;
  /** The newest disconnect heard before the first read answered. */
  #heardEarly: number | undefined;

  /**
   * The socket's first read answered, showing the user's newest disconnect (`disconnectedOn`,
   * null: none): true when one heard meanwhile ends the socket.
   */
  admitted(disconnectedOn: string | null): boolean {
    this.#admittedAfter = disconnectedOn === null ? null : Date.parse(disconnectedOn);
    const heard = this.#heardEarly;
    this.#heardEarly = undefined;
    return heard !== undefined && endedBy(this.#admittedAfter, heard);
  }

  /**
   * An operator's disconnect of the user was heard, by its event or read from the store (a screen
   * of the socket, a check of its access): true when it ends the socket now. One without its time
   * (an event from an instance that predates it) is believed.
   */
  heard(disconnectedOn: string | undefined): boolean {
    if (disconnectedOn === undefined) return true;
    const at = Date.parse(disconnectedOn);
    if (this.#admittedAfter === undefined) {
      this.#heardEarly = Math.max(this.#heardEarly ?? at, at);
      return false;
    }
    return endedBy(this.#admittedAfter, at);
  }
}

/** Whether a socket let in after the disconnect of `admittedAfter` (null: none) ends at `at`'s. */
function endedBy(admittedAfter: number | null, at: number): boolean {
  return admittedAfter === null || at > admittedAfter;
}
