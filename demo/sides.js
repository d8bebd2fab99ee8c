/**
 * Which side of a chat a user is on. A chat has the customer (`user_id`) on one side and the
 * vendor with its members on the other, so a member's messages are the vendor's side's: a read
 * by a member marks the customer's messages, never the vendor's or another member's.
 */

/**
 * Whether `message` was sent to the side `userId` is on (what `userId` reads, and what a read by
 * `userId` marks).
 * @param {{ user_id: string }} chat
 * @param {string} userId
 * @param {{ sender_id: string }} message
 */
export function sentToSideOf(chat, userId, message) {
  return (message.sender_id === chat.user_id) !== (userId === chat.user_id);
}

/**
 * Whether `userId` and `otherId` are on the same side of `chat` (a read by one changes what
 * the other has unread).
 * @param {{ user_id: string }} chat
 * @param {string} userId
 * @param {string} otherId
 */
export function onSameSide(chat, userId, otherId) {
  return (userId === chat.user_id) === (otherId === chat.user_id);
}
