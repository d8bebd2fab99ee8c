import assert from "node:assert/strict";
import { sentToSideOf } from "./sides.js";

Deno.test("a read marks the messages of the other side: a member's read marks the customer's, not the vendor's", () => {
  const chat = { user_id: "alice" };
  const fromAlice = { sender_id: "alice" };
  const fromAcme = { sender_id: "acme" };
  const fromAgent = { sender_id: "agent-1" };
  assert.deepEqual(
    [fromAlice, fromAcme, fromAgent].map((message) => sentToSideOf(chat, "agent-2", message)),
    [true, false, false],
  );
  assert.deepEqual(
    [fromAlice, fromAcme, fromAgent].map((message) => sentToSideOf(chat, "acme", message)),
    [true, false, false],
  );
  assert.deepEqual(
    [fromAlice, fromAcme, fromAgent].map((message) => sentToSideOf(chat, "alice", message)),
    [false, true, true],
  );
});
