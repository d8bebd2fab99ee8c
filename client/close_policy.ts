import { CloseCode } from "../protocol/close_codes.ts";

/**
 * Whether a client should reconnect after the server closed its socket with `code`. Not
 * after 4403 (not a participant, unknown chat, or banned) or 4408 (an operator disconnected
 * it on purpose). After 4401 only with `renewsToken`: the socket had been taken in, so its
 * token was good and has expired while open, and the next attempt asks for a new one;
 * otherwise the token will not get better. After anything else (1012 restart, 1013, 4429,
 * 1011, and 1006 for a lost network) it reconnects with backoff.
 */
export function reconnectsAfter(code: number, options: { renewsToken?: boolean } = {}): boolean {
  switch (code) {
    case CloseCode.tokenInvalid:
      return options.renewsToken === true;
    case CloseCode.forbidden:
    case CloseCode.operatorDisconnect:
      return false;
    default:
      return true;
  }
}
