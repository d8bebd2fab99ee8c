/**
 * The demo chat page: one client of `/v1/ws/chats/` for the list of chats and unread counts,
 * and one of `/v1/ws/chat/{id}/` for the open chat. Plain DOM, bundled with the client
 * library by `deno bundle` (demo/bundle.ts); JavaScript so that the project's type check,
 * which knows Deno's globals and not the DOM's, is left alone.
 */
import { createChatClient } from "../client/mod.ts";
import { onSameSide, sentToSideOf } from "./sides.js";

const SAVED = "chat-demo-tokens";
const TYPING_IDLE_MS = 2_000;

/** @param {string} id */
const $ = (id) => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`no #${id}`);
  return element;
};

/** @param {string} tag @param {Record<string, string>} attributes @param {...(Node|string)} children */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.append(...children);
  return element;
}

/** The claim the server reads the user id from (JWT_USER_CLAIM), when it is set. */
const USER_CLAIM = document.querySelector('meta[name="chat-user-claim"]')?.content;

/**
 * The user id a token is for (the server's claim: JWT_USER_CLAIM, else `user_id`, else `sub`)
 * and when it expires; null if not a JWT.
 */
function claimsOf(token) {
  try {
    const payload = token.split(".")[1].replaceAll("-", "+").replaceAll("_", "/");
    // JSON in UTF-8: atob gives a byte a character, which would garble any id beyond ASCII
    const bytes = Uint8Array.from(atob(payload), (char) => char.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    const claim = USER_CLAIM ?? (Object.hasOwn(claims, "user_id") ? "user_id" : "sub");
    const user = String(claims[claim] ?? "");
    return user ? { user, exp: Number(claims.exp ?? 0) } : null;
  } catch {
    return null;
  }
}

function savedTokens() {
  try {
    const now = Date.now() / 1000;
    const list = JSON.parse(localStorage.getItem(SAVED) ?? "[]");
    return list.filter((entry) => entry && claimsOf(entry.token)?.exp > now);
  } catch {
    return [];
  }
}

function rememberToken(token) {
  const others = savedTokens().filter((entry) => entry.token !== token);
  localStorage.setItem(SAVED, JSON.stringify([{ token }, ...others].slice(0, 10)));
}

function renderSavedTokens() {
  const select = $("saved-tokens");
  select.replaceChildren(h("option", { value: "" }, "–"));
  for (const { token } of savedTokens()) {
    const claims = claimsOf(token);
    const until = new Date(claims.exp * 1000).toLocaleString();
    select.append(h("option", { value: token }, `${claims.user} (until ${until})`));
  }
}

function showStatus(status) {
  const pill = $("connection");
  pill.dataset.state = status.state;
  pill.textContent = status.state === "reconnecting" && status.retryInMs !== undefined
    ? `reconnecting (${status.code}) in ${(status.retryInMs / 1000).toFixed(1)} s`
    : status.state === "closed"
    ? `closed (${status.code})`
    : status.state;
}

function showError(id, error) {
  const element = $(id);
  element.hidden = !error;
  element.textContent = error ? String(error.message ?? error) : "";
}

/** The signed-in user: the list of chats, and at most one open chat. */
let session = null;

async function signIn(token) {
  const claims = claimsOf(token);
  if (!claims) return showError("login-error", new Error("that is not a JWT"));
  await signOut();
  const list = createChatClient({ url: location.origin, token });
  session = { token, me: claims.user, list, chats: new Map(), view: null };
  const current = session;
  showStatus(list.status);
  list.on("status", showStatus);
  list.on("chats", (frame) => {
    current.chats = new Map(frame.chats.map((summary) => [summary.chat_id, summary]));
    renderChats();
  });
  list.on("unread_messages", (frame) => setUnread(frame.chat_id, frame.count));
  // the server pushes counts after new messages only: a read on this side elsewhere (another
  // page of this user's, another member of the vendor), or a deletion of a message unread
  // (which no longer counts), is asked about
  const recount = (chatId) => {
    list.request({ action: "unread_message", chat_id: chatId })
      .then((answer) => setUnread(chatId, answer.count), () => {});
  };
  const onRead = ({ chat_id, reader_id }) => {
    const summary = current.chats.get(chat_id);
    if (summary && onSameSide(summary, current.me, reader_id)) recount(chat_id);
  };
  list.on("message_read", onRead);
  list.on("messages_read", onRead);
  list.on("message_deleted", ({ chat_id }) => {
    if (current.chats.get(chat_id)?.unread_count) recount(chat_id);
  });
  list.on("chat_message", ({ chat_id, message }) => {
    const summary = current.chats.get(chat_id);
    if (!summary) return void refreshChats();
    summary.last_message = message;
    summary.updated_at = message.created_at;
    renderChats();
  });
  // the preview is the last message as it is now: edited, or deleted (its content gone)
  const amendLast = (chatId, messageId, change) => {
    const summary = current.chats.get(chatId);
    if (summary?.last_message?.id !== messageId) return;
    summary.last_message = { ...summary.last_message, ...change };
    renderChats();
  };
  list.on("message_edited", ({ chat_id, message }) => amendLast(chat_id, message.id, message));
  list.on(
    "message_deleted",
    ({ chat_id, message_id }) =>
      amendLast(chat_id, message_id, { deleted: true, content: null, media_url: null }),
  );
  try {
    await list.ready();
  } catch (error) {
    session = null;
    return showError("login-error", new Error(`the service refused the token: ${error.message}`));
  }
  rememberToken(token);
  showError("login-error", null);
  $("who").textContent = `signed in as ${claims.user}`;
  $("login").hidden = true;
  $("app").hidden = false;
}

async function signOut() {
  const ending = session;
  session = null;
  if (!ending) return;
  await ending.view?.close();
  await ending.list.close();
}

async function refreshChats() {
  if (!session) return;
  const page = await session.list.request({ action: "list_chats" });
  session.chats = new Map(page.chats.map((summary) => [summary.chat_id, summary]));
  renderChats();
}

function setUnread(chatId, count) {
  const summary = session?.chats.get(chatId);
  if (!summary || summary.unread_count === count) return;
  summary.unread_count = count;
  renderChats();
}

const otherSide = (summary) => summary.user_id === session.me ? summary.vendor_id : summary.user_id;

function renderChats() {
  if (!session) return;
  const ordered = [...session.chats.values()].sort((a, b) =>
    b.updated_at.localeCompare(a.updated_at)
  );
  $("chat-list").replaceChildren(...ordered.map((summary) => {
    const last = summary.last_message;
    const preview = !last
      ? "no messages yet"
      : last.deleted
      ? "message deleted"
      : last.media_type === "text"
      ? last.content
      : `[${last.media_type}]`;
    const item = h(
      "li",
      {
        "data-chat-id": summary.chat_id,
        "aria-current": String(session.view?.chatId === summary.chat_id),
      },
      h(
        "span",
        { class: "text" },
        h("span", { class: "name" }, otherSide(summary)),
        h("span", { class: "preview" }, preview ?? ""),
      ),
      h(
        "span",
        { class: "badge", "data-unread": String(summary.unread_count) },
        String(summary.unread_count),
      ),
    );
    item.addEventListener("click", () => openChat(summary.chat_id));
    return item;
  }));
}

function openChat(chatId) {
  if (!session || session.view?.chatId === chatId) return;
  // left and replaced at once: a click that came while the old socket closed (a double click)
  // would make a second view, never closed, whose composer would send into this chat
  session.view?.close();
  session.view = createChatView(session, session.chats.get(chatId));
  renderChats();
}

/** One open chat: its messages, read marks, deletions, typing and the composer. */
function createChatView(current, summary) {
  const { token, me } = current;
  const chatId = summary.chat_id;
  const other = otherSide(summary);
  const client = createChatClient({ url: location.origin, token, chatId });
  /** @type {Map<string, any>} by id */
  const messages = new Map();
  let typingTimer;
  let theirTypingTimer;
  let typing = false;

  $("chat").hidden = false;
  $("no-chat").hidden = true;
  $("chat-title").textContent = `Chat with ${other}`;
  $("messages").replaceChildren();
  $("typing").textContent = "";
  showError("chat-error", null);

  let closed = false;
  // a request the closing rejects is no failure of the chat shown next
  const fail = (error) => closed || showError("chat-error", error);

  function render(message) {
    const mine = message.sender_id === me;
    const body = message.deleted
      ? h("span", { class: "body" }, "message deleted")
      : message.media_type === "image" && message.media_url
      ? h("img", {
        class: "body",
        alt: "image",
        src: `${message.media_url}?token=${encodeURIComponent(token)}`,
      })
      : h("span", { class: "body" }, message.content ?? `[${message.media_type}]`);
    const meta = h(
      "span",
      { class: "meta" },
      new Date(message.created_at).toLocaleTimeString(),
    );
    if (message.edited_at) meta.append("edited");
    if (mine) {
      meta.append(
        h(
          "span",
          { class: "read-mark", "data-read": String(message.is_read) },
          message.is_read ? "✓✓ read" : "✓ sent",
        ),
      );
      if (!message.deleted) {
        const remove = h("button", { type: "button", class: "delete" }, "delete");
        remove.addEventListener("click", () => {
          client.request({ action: "delete_message", message_id: message.id }).catch(fail);
        });
        meta.append(remove);
      }
    }
    if (body instanceof HTMLImageElement) {
      // for whoever waits for the picture (tests), and a mark when it cannot be had
      body.addEventListener("load", () => (body.dataset.loaded = "true"));
      body.addEventListener("error", () => (body.dataset.loaded = "false"));
    }
    const item = h(
      "li",
      {
        "data-id": message.id,
        "data-seq": String(message.seq),
        class: [mine ? "mine" : "theirs", message.deleted ? "deleted" : ""].join(" ").trim(),
      },
      body,
      meta,
    );
    const old = messages.get(message.id)?.item;
    messages.set(message.id, { message, item });
    const list = $("messages");
    if (old) old.replaceWith(item);
    else {
      const later = [...list.children].find((child) => Number(child.dataset.seq) > message.seq);
      list.insertBefore(item, later ?? null);
      item.scrollIntoView({ block: "end" });
    }
  }

  function update(messageId, change) {
    const entry = messages.get(messageId);
    if (entry) render({ ...entry.message, ...change(entry.message) });
  }

  /** Marks what the other side sent as read, once it is on screen. */
  async function markRead() {
    const unread = [...messages.values()]
      .map((entry) => entry.message)
      .filter((message) => sentToSideOf(summary, me, message) && !message.is_read);
    if (unread.length === 0) return;
    const seq = Math.max(...unread.map((message) => message.seq));
    try {
      await client.request({ action: "read_up_to", seq });
      const answer = await client.request({ action: "unread_message" });
      setUnread(chatId, answer.count);
    } catch (error) {
      fail(error);
    }
  }

  showStatus(client.status);
  const stopStatus = client.on("status", showStatus);
  client.on("latest_chat", (page) => {
    for (const message of page.messages) render(message);
    markRead();
  });
  client.on("chat_message", ({ message }) => {
    render(message);
    if (message.sender_id !== me) $("typing").textContent = "";
    if (sentToSideOf(summary, me, message)) markRead();
  });
  client.on("message_read", (frame) => update(frame.message_id, () => ({ is_read: true })));
  client.on("messages_read", (frame) => {
    for (const { message } of messages.values()) {
      if (message.seq <= frame.up_to_seq && sentToSideOf(summary, frame.reader_id, message)) {
        update(message.id, () => ({ is_read: true, read_at: frame.read_at }));
      }
    }
  });
  client.on(
    "message_deleted",
    (frame) => update(frame.message_id, () => ({ deleted: true, content: null, media_url: null })),
  );
  client.on("message_edited", (frame) => render(frame.message));
  client.on("unread_messages", (frame) => setUnread(frame.chat_id, frame.count));
  client.on("typing", (frame) => {
    clearTimeout(theirTypingTimer);
    $("typing").textContent = frame.is_typing ? `${frame.user_id} is typing…` : "";
    // a stop that never comes (a closed tab) does not leave the line forever
    if (frame.is_typing) {
      theirTypingTimer = setTimeout(() => ($("typing").textContent = ""), 6_000);
    }
  });

  function setTyping(on) {
    if (typing === on) return;
    typing = on;
    client.notify({ action: "typing", is_typing: on });
  }

  const text = $("text");
  const image = $("image");
  const onInput = () => {
    setTyping(text.value.length > 0);
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => setTyping(false), TYPING_IDLE_MS);
  };
  const send = (frame) =>
    client.request({ action: "send_message", receiver_id: other, ...frame }).catch(fail);
  const onSubmit = (event) => {
    event.preventDefault();
    const content = text.value.trim();
    if (!content) return;
    text.value = "";
    clearTimeout(typingTimer);
    setTyping(false);
    send({ media_type: "text", content });
  };
  const onImage = () => {
    const file = image.files?.[0];
    if (!file) return;
    const reader = new FileReader();
    reader.onload = () => send({ media_type: "image", image: String(reader.result) });
    reader.onerror = () => fail(reader.error);
    reader.readAsDataURL(file);
    image.value = "";
  };
  text.addEventListener("input", onInput);
  $("composer").addEventListener("submit", onSubmit);
  image.addEventListener("change", onImage);

  return {
    chatId,
    async close() {
      // switching chats is not the connection closing
      closed = true;
      stopStatus();
      clearTimeout(typingTimer);
      clearTimeout(theirTypingTimer);
      text.removeEventListener("input", onInput);
      $("composer").removeEventListener("submit", onSubmit);
      image.removeEventListener("change", onImage);
      await client.close();
    },
  };
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token-input").value.trim() || $("saved-tokens").value;
  if (token) signIn(token);
});
$("saved-tokens").addEventListener("change", () => {
  $("token-input").value = $("saved-tokens").value;
});
$("sign-out").addEventListener("click", async () => {
  await signOut();
  $("app").hidden = true;
  $("chat").hidden = true;
  $("no-chat").hidden = false;
  $("login").hidden = false;
  $("who").textContent = "";
  showStatus({ state: "closed", code: 1000 });
  renderSavedTokens();
});

renderSavedTokens();
// a link from `deno task dev` or `deno task seed`: #token=... (a fragment never reaches a server)
const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromLink) {
  history.replaceState(null, "", location.pathname);
  signIn(fromLink);
}
