import assert from "node:assert/strict";
import { actions } from "../ws/frames.ts";
import { asyncApiDocument, frameSchemaDocument } from "./documents.ts";
import { staleDocuments } from "./generate.ts";
import { serverFrameSchema } from "./server_frames.ts";

type Json = Record<string, unknown>;

/** Every `$ref` in a document, with the JSON pointer it names. */
function refsOf(value: unknown, found: string[] = []): string[] {
  if (Array.isArray(value)) { for (const item of value) refsOf(item, found); }
  else if (value && typeof value === "object") {
    for (const [key, item] of Object.entries(value)) {
      if (key === "$ref" && typeof item === "string") found.push(item);
      else refsOf(item, found);
    }
  }
  return found;
}

function resolve(document: Json, ref: string): unknown {
  assert.ok(ref.startsWith("#/"), `${ref} is not local`);
  return ref.slice(2).split("/").reduce<unknown>(
    (node, key) =>
      node && typeof node === "object" ? (node as Json)[key.replaceAll("~1", "/")] : undefined,
    document,
  );
}

const serverTypes = serverFrameSchema.options.map((option) => option.shape.type.value);

Deno.test("docs/protocol/ is what `deno task protocol` makes of the current schemas", async () => {
  assert.deepEqual(await staleDocuments(), [], "run `deno task protocol` and commit the result");
});

Deno.test("the frame JSON Schemas name one definition per action and per server frame type", () => {
  const client = frameSchemaDocument("client");
  const server = frameSchemaDocument("server");
  assert.deepEqual(
    (client.oneOf as Json[]).map((entry) => entry.$ref),
    actions.map((action) => `#/$defs/${action}`),
  );
  assert.deepEqual(
    (server.oneOf as Json[]).map((entry) => entry.$ref),
    serverTypes.map((type) => `#/$defs/${type}`),
  );
  for (const document of [client, server]) {
    for (const ref of refsOf(document)) assert.ok(resolve(document, ref), `${ref} resolves`);
  }
  const defs = client.$defs as Record<string, Json>;
  const send = defs.send_message!.properties as Record<string, Json>;
  assert.deepEqual(send.action, { type: "string", const: "send_message" });
  assert.ok(!(defs.send_message!.required as string[]).includes("client_id"));
  const message = (server.$defs as Record<string, Json>).Message!;
  assert.equal((message.required as string[]).length, 15, "every field of a message is there");
});

Deno.test("the client frame schema states the bounds of a message's content: 1 to 4000 characters once trimmed", () => {
  const defs = frameSchemaDocument("client").$defs as Record<string, Json>;
  for (const action of ["send_message", "edit_message"]) {
    const content = (defs[action]!.properties as Record<string, Json>).content!;
    assert.equal(content.type, "string", action);
    assert.equal(content.minLength, 1, action);
    assert.match(String(content.description), /1 to 4000 characters once trimmed/, action);
  }
});

Deno.test("the AsyncAPI document covers every action and frame on both endpoints, and its refs resolve", () => {
  const document = asyncApiDocument();
  assert.equal(document.asyncapi, "3.0.0");
  for (const ref of refsOf(document)) assert.ok(resolve(document, ref), `${ref} resolves`);
  const channels = document.channels as Record<string, Json>;
  assert.deepEqual(Object.keys(channels), ["chat", "chats"]);
  assert.equal(channels.chat!.address, "/v1/ws/chat/{chat_id}/");
  assert.equal(channels.chats!.address, "/v1/ws/chats/");
  const operations = document.operations as Record<string, Json>;
  for (const action of actions) {
    assert.equal(operations[`chats.receive.${action}`]?.action, "receive", action);
  }
  const sent = new Set(
    Object.values(operations).flatMap((operation) => [
      ...(operation.action === "send" ? operation.messages as Json[] : []),
      ...(((operation.reply as Json | undefined)?.messages ?? []) as Json[]),
    ]).map((message) => String(message.$ref).split("/").at(-1)),
  );
  for (const type of serverTypes) assert.ok(sent.has(`server.${type}`), `${type} is sent`);
  // a reply names messages of its own channel
  for (const [name, operation] of Object.entries(operations)) {
    const channel = (operation.channel as Json).$ref as string;
    for (
      const message of [
        ...(operation.messages as Json[]),
        ...(((operation.reply as Json | undefined)?.messages ?? []) as Json[]),
      ]
    ) {
      assert.ok(String(message.$ref).startsWith(`${channel}/messages/`), `${name}`);
    }
  }
});
