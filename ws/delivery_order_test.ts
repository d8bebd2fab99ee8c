import assert from "node:assert/strict";
import type { ChatFrame } from "../chat/events.ts";
import { createDelivery, type Delivery } from "../chat/feed.ts";
import type { ChatStore } from "../chat/ports.ts";
import { createUnreadPushes } from "../chat/unread_push.ts";
import { storedMessage } from "../tests/support/stored_messages.ts";
import { DeliveryOrder } from "./delivery_order.ts";

/** A live event of one of cust-1's chats with vend-1, for everyone in it. */
function delivery(frame: ChatFrame): Delivery {
  const chat = { user_id: "cust-1", vendor_id: "vend-1" };
  return createDelivery({ chat, audience: { to: "all" }, frame, sent_at: 0 });
}

function message(chatId: string, seq: number): Delivery {
  return delivery({ type: "chat_message", chat_id: chatId, message: storedMessage(chatId, seq) });
}

function typing(chatId: string): Delivery {
  return delivery({ type: "typing", chat_id: chatId, user_id: "cust-1", is_typing: true });
}

Deno.test("DeliveryOrder holds live events until the first frames are out, then gives them back in order", () => {
  const order = new DeliveryOrder();
  const first = message("a", 1);
  const second = typing("a");
  assert.equal(order.due(first), false);
  assert.equal(order.due(second), false);
  assert.deepEqual(order.ready(), [first, second]);
  assert.equal(order.due(typing("a")), true);
  assert.deepEqual(order.ready(), []);
});

Deno.test("DeliveryOrder drops a live message that a page sent already had, and sends the ones after it", () => {
  const order = new DeliveryOrder();
  order.ready();
  order.pageSent("a", 5);
  assert.equal(order.due(message("a", 4)), false);
  assert.equal(order.due(message("a", 5)), false);
  assert.equal(order.due(message("a", 6)), true);
  assert.equal(order.due(message("a", 6)), false); // sent once
  assert.equal(order.due(typing("a")), true); // only messages carry a seq
  assert.equal(order.due(message("b", 1)), true); // no page of b: nothing to overlap
});

/** A live message to cust-1 with its publisher's snapshot: it alone unread. */
function messageToRead(chatId: string, seq: number): Delivery {
  const chat = { user_id: "cust-1", vendor_id: "vend-1" };
  const sent = storedMessage(chatId, seq);
  return createDelivery({
    chat,
    audience: { to: "all" },
    frame: { type: "chat_message", chat_id: chatId, message: sent },
    sent_at: 0,
    unread: { side: "customer", count: 1, seqs: [seq] },
  }, { unreadMessages: [JSON.stringify(sent)] });
}

Deno.test("DeliveryOrder drops the unread push of a message a page sent already had (the unread_messages sent with the page is newer), and sends the pushes of the messages after it", () => {
  const order = new DeliveryOrder();
  const unreadPushes = createUnreadPushes({ store: {} as ChatStore, onError: () => {} });
  const pushed: Delivery[] = [];
  const to = { send: (push: Delivery) => void pushed.push(push), stillFollowed: () => true };
  // message 5 and its push arrive while the first frames are read; the page has message 5, and
  // the unread_messages read after it may already leave it out (read meanwhile, or deleted)
  const fifth = messageToRead("a", 5);
  unreadPushes.after("a", fifth, to);
  assert.equal(order.due(fifth), false);
  assert.equal(order.due(pushed[0]!), false);
  order.pageSent("a", 5);
  assert.deepEqual(order.ready().map((delivery) => order.due(delivery)), [false, false]);
  const sixth = messageToRead("a", 6);
  unreadPushes.after("a", sixth, to);
  assert.equal(order.due(sixth), true);
  assert.equal(order.due(pushed[1]!), true, "the push of a message sent live goes out");
  // a chat taken in later: its pushes held with its history alike
  order.hold("b");
  const first = messageToRead("b", 1);
  unreadPushes.after("b", first, to);
  assert.equal(order.due(first), false);
  assert.equal(order.due(pushed[2]!), false);
  order.pageSent("b", 1);
  assert.deepEqual(order.release("b").map((delivery) => order.due(delivery)), [false, false]);
});

Deno.test("DeliveryOrder drops the unread pushes of the messages a chat list counted, those held while it was read and those still to come", () => {
  const order = new DeliveryOrder();
  const unreadPushes = createUnreadPushes({ store: {} as ChatStore, onError: () => {} });
  const pushed: Delivery[] = [];
  const to = { send: (push: Delivery) => void pushed.push(push), stillFollowed: () => true };
  order.ready();
  order.holdUntilListed();
  // a's message 3 and its push arrive while the list is read
  const third = messageToRead("a", 3);
  unreadPushes.after("a", third, to);
  assert.equal(order.due(third), false);
  assert.equal(order.due(pushed[0]!), false);
  // the list counts a up to 3, and b up to 2, of which the feed has delivered only 1
  order.listSent(new Map([["a", 3], ["b", 2]]), (chatId) => chatId === "a" ? 3 : 1);
  assert.deepEqual(order.listed(), [third], "the message goes out, its push does not");
  const [second, afterList] = [messageToRead("b", 2), messageToRead("b", 3)];
  unreadPushes.after("b", second, to);
  unreadPushes.after("b", afterList, to);
  assert.equal(order.due(pushed[1]!), false, "a push still to come of a message counted");
  assert.equal(order.due(pushed[2]!), true, "a push of a message after the list");
});

Deno.test("DeliveryOrder holds the events of a chat whose history is being sent, and only that chat's", () => {
  const order = new DeliveryOrder();
  order.ready();
  order.hold("a");
  const held = [message("a", 2), message("a", 3)];
  for (const delivery of held) assert.equal(order.due(delivery), false);
  assert.equal(order.due(message("b", 1)), true);
  assert.deepEqual([order.holds("a"), order.holds("b")], [true, false]);
  order.pageSent("a", 2);
  const released = order.release("a");
  assert.deepEqual(released, held);
  assert.deepEqual(released.map((delivery) => order.due(delivery)), [false, true]);
  assert.equal(order.holds("a"), false);
  assert.deepEqual(order.release("a"), []);
});

Deno.test("DeliveryOrder holds every live event while the socket's access is checked, and gives them back once it is kept", () => {
  const order = new DeliveryOrder();
  order.ready();
  order.holdUntilChecked();
  const held = [message("a", 1), typing("b")];
  for (const event of held) assert.equal(order.due(event), false);
  assert.equal(order.held, 2);
  assert.deepEqual(order.checked(order.checkBegins()), held);
  assert.equal(order.held, 0);
  assert.equal(order.due(typing("a")), true);
});

Deno.test("DeliveryOrder keeps holding after the first frames while a check is pending, and the reverse", () => {
  const order = new DeliveryOrder();
  order.holdUntilChecked();
  const early = message("a", 1);
  assert.equal(order.due(early), false);
  // the first frames are out, the check is not: nothing goes yet
  assert.deepEqual(order.ready(), []);
  assert.deepEqual(order.checked(order.checkBegins()), [early]);

  const later = new DeliveryOrder();
  later.holdUntilChecked();
  const event = typing("a");
  assert.equal(later.due(event), false);
  // checked before the first frames are out: still held for them
  assert.deepEqual(later.checked(later.checkBegins()), []);
  assert.deepEqual(later.ready(), [event]);
});

Deno.test("DeliveryOrder gives back what a screen and a check held only once both are over, in either order", () => {
  for (const lastLifted of ["check", "screen"] as const) {
    const order = new DeliveryOrder();
    order.ready();
    order.holdUntilScreened(1);
    order.holdUntilChecked();
    const held = [typing("a"), message("a", 1)];
    for (const event of held) assert.equal(order.due(event), false);
    const first = lastLifted === "check" ? order.screened(1) : order.checked(order.checkBegins());
    assert.deepEqual(first, [], `released before the ${lastLifted} was over`);
    assert.equal(order.due(typing("b")), false);
    const last = lastLifted === "check" ? order.checked(order.checkBegins()) : order.screened(1);
    assert.deepEqual(last, [...held, typing("b")]);
    assert.equal(order.due(typing("a")), true);
  }
});

Deno.test("DeliveryOrder: a check lifts only the holds asked before it began, a screen only its own", () => {
  const order = new DeliveryOrder();
  order.ready();
  order.holdUntilChecked();
  const began = order.checkBegins();
  // the bus may have lost events again while the first check ran: the next check decides
  order.holdUntilChecked();
  assert.equal(order.due(typing("a")), false);
  assert.deepEqual(order.checked(began), []);
  assert.deepEqual(order.checked(order.checkBegins()), [typing("a")]);

  order.holdUntilScreened(1);
  order.holdUntilScreened(2);
  assert.equal(order.due(typing("b")), false);
  // the first screen's answer came last but one: the second screen still holds
  assert.deepEqual(order.screened(1), []);
  assert.deepEqual(order.screened(2), [typing("b")]);
});

Deno.test("DeliveryOrder: a round trip hold is lifted by its newest round trip only", () => {
  const order = new DeliveryOrder();
  order.ready();
  const first = order.holdUntilRoundTrip();
  const a = typing("c1");
  assert.equal(order.due(a), false);
  const second = order.holdUntilRoundTrip();
  const b = message("c1", 1);
  assert.equal(order.due(b), false);
  assert.deepEqual(order.roundTripped(first), [], "a newer hold waits for its own");
  assert.deepEqual(order.roundTripped(second), [a, b]);
  assert.equal(order.due(message("c1", 2)), true);
});
