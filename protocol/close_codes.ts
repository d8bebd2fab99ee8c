/**
 * Close codes of the WebSocket plane (protocol.md "Errors and close codes"). They tell a
 * client whether reconnecting can help: see `client/close_policy.ts`.
 */
export const CloseCode = {
  tokenInvalid: 4401,
  forbidden: 4403,
  operatorDisconnect: 4408,
  tooMany: 4429,
  frameTooLarge: 1009,
  internal: 1011,
  restarting: 1012,
  tryAgainLater: 1013,
} as const;
