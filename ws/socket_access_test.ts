import assert from "node:assert/strict";
import { OperatorDisconnects } from "./operator_disconnects.ts";
import { type AccessHost, closeIfSanctioned } from "./socket_access.ts";

const earlier = "2026-12-06T10:00:00.000Z";
const later = "2026-12-06T10:00:00.001Z";

/** A socket the store let in showing the user's newest disconnect `disconnectedOn`. */
function socketAdmitted(disconnectedOn: string | null) {
  const closes: Array<{ code: number; reason: string }> = [];
  const disconnects = new OperatorDisconnects();
  disconnects.admitted(disconnectedOn);
  const connection: AccessHost = {
    userId: "alice",
    endpoint: { kind: "chats" },
    closed: false,
    endedByDisconnect: (on) => disconnects.heard(on),
    close: (code, reason) => closes.push({ code, reason }),
  };
  return { connection, closes };
}

Deno.test("closeIfSanctioned() closes a banned user's socket with 4403", () => {
  const { connection, closes } = socketAdmitted(null);
  assert.equal(closeIfSanctioned(connection, { banned: true, disconnectedOn: null }), true);
  assert.deepEqual(closes, [{ code: 4403, reason: "banned" }]);
});

Deno.test("closeIfSanctioned() closes with 4408 for an operator's disconnect recorded after the store let the socket in", () => {
  const { connection, closes } = socketAdmitted(earlier);
  assert.equal(closeIfSanctioned(connection, { banned: false, disconnectedOn: later }), true);
  assert.deepEqual(closes, [
    { code: 4408, reason: "disconnected by an operator" },
  ]);
});

Deno.test("closeIfSanctioned() keeps a socket whose admission showed the disconnect, or with no sanction", () => {
  const { connection, closes } = socketAdmitted(later);
  assert.equal(closeIfSanctioned(connection, { banned: false, disconnectedOn: later }), false);
  assert.equal(closeIfSanctioned(connection, { banned: false, disconnectedOn: earlier }), false);
  assert.equal(closeIfSanctioned(connection, { banned: false, disconnectedOn: null }), false);
  assert.equal(closeIfSanctioned(connection, undefined), false);
  assert.deepEqual(closes, []);
});
