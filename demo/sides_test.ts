import assert from "node:assert/strict";
import { onSameSide, sentToSideOf } from "./sides.js";

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

Deno.test("the vendor and its members are on one side, the customer on the other", () => {
  const chat = { user_id: "alice" };
  assert.deepEqual(
    [["acme", "agent-1"], ["agent-1", "agent-2"], ["alice", "alice"], ["alice", "acme"]]
      .map(([one, other]) => onSameSide(chat, one!, other!)),
    [true, true, true, false],
  );
});
