import assert from "node:assert/strict";
import { type AccessHost, closeIfSanctioned } from "./socket_access.ts";

function socketOpenedAt(openedAt: number) {
  const closes: Array<{ code: number; reason: string }> = [];
  const connection: AccessHost = {
    userId: "alice",
    endpoint: { kind: "chats" },
    closed: false,
    openedAt,
    close: (code, reason) => closes.push({ code, reason }),
  };
  return { connection, closes };
}

Deno.test("closeIfSanctioned() closes a banned user's socket with 4403", () => {
  const { connection, closes } = socketOpenedAt(1_000);
  assert.equal(closeIfSanctioned(connection, { banned: true, disconnectedAt: null }), true);
  assert.deepEqual(closes, [{ code: 4403, reason: "banned" }]);
});

Deno.test("closeIfSanctioned() closes with 4408 for an operator's disconnect made after the socket opened", () => {
  const { connection, closes } = socketOpenedAt(1_000);
  assert.equal(closeIfSanctioned(connection, { banned: false, disconnectedAt: 1_001 }), true);
  assert.deepEqual(closes, [
    { code: 4408, reason: "disconnected by an operator" },
  ]);
});

Deno.test("closeIfSanctioned() keeps a socket opened after the disconnect, or with no sanction", () => {
  const { connection, closes } = socketOpenedAt(1_000);
  assert.equal(closeIfSanctioned(connection, { banned: false, disconnectedAt: 1_000 }), false);
  assert.equal(closeIfSanctioned(connection, { banned: false, disconnectedAt: null }), false);
  assert.equal(closeIfSanctioned(connection, undefined), false);
  assert.deepEqual(closes, []);
});
