import { CloseCode } from "../protocol/close_codes.ts";

/**
 * Whether a client should reconnect after the server closed its socket with `code`. Not
 * after 4401 (the token will not get better), 4403 (not a participant, unknown chat, or
 * banned) or 4408 (an operator disconnected it on purpose). After anything else (1012
 * restart, 1013, 4429, 1011, and 1006 for a lost network) it reconnects with backoff.
 */
export function reconnectsAfter(code: number): boolean {
  switch (code) {
    case CloseCode.tokenInvalid:
    case CloseCode.forbidden:
    case CloseCode.operatorDisconnect:
      return false;
    default:
      return true;
  }
}
