/**
 * `deno task seed`: demo users, two vendors with members, chats and a few messages, through
 * the chat service itself (so every rule holds), then a token and a demo-page link per user.
 * It runs on the database `deno task dev` uses (DATABASE_URL, else the embedded one) and can be
 * run again: chats are one per pair, members are upserted, messages carry fixed client_ids.
 */
import { checkedClaims, signDevToken } from "../auth/sign.ts";
import type { ChatService } from "../chat/service.ts";
import type { Chat, VendorRole } from "../chat/types.ts";
import { configOrExit, loadConfig, noArgumentsOrExit, requireWritableDataDir } from "../config.ts";
import { EmbeddedDatabaseInUse } from "../db/embedded.ts";
import { startService } from "../main.ts";
import { couldNotAfter, couldNotStart } from "./could_not_start.ts";
import { overDefaults } from "./environment.ts";
import { devSecretsOrExit } from "./secrets.ts";

/** Who the demo is about. */
export const DEMO = {
  customers: ["alice", "bob"],
  vendors: {
    "acme-store": [["acme-owner", "owner"], ["acme-agent", "agent"]],
    "bike-shop": [["bike-agent", "agent"]],
  } as Record<string, Array<[string, VendorRole]>>,
  chats: [["alice", "acme-store"], ["bob", "acme-store"], ["alice", "bike-shop"]],
  /** The opening of alice's chat with acme-store: [sender, text]. */
  conversation: [
    ["alice", "Hi! Is the blue kettle still in stock?"],
    ["acme-agent", "It is, three left. Shall I hold one for you?"],
    ["alice", "Yes please, I'll pick it up tomorrow."],
  ],
} as const;

export interface Seeded {
  users: string[];
  chats: Chat[];
}

/** Creates (or finds) the demo data. Errors are the service's ChatError. */
export async function seedDemo(service: ChatService): Promise<Seeded> {
  for (const [vendorId, members] of Object.entries(DEMO.vendors)) {
    for (const [userId, role] of members) await service.addVendorMember(vendorId, userId, role);
  }
  const chats: Chat[] = [];
  for (const [customer, vendor] of DEMO.chats) {
    chats.push(await service.createChat(customer, vendor));
  }
  const first = chats[0]!;
  for (const [index, [sender, content]] of DEMO.conversation.entries()) {
    const membership = await service.membership(sender, first.id);
    await service.sendMessage({ user_id: sender, membership }, {
      receiver_id: membership.side === "customer" ? first.vendor_id : first.user_id,
      media_type: "text",
      content,
      media: null,
      client_id: `seed-${index + 1}`,
    });
  }
  const users = [
    ...DEMO.customers,
    ...Object.entries(DEMO.vendors).flatMap(([vendor, members]) => [
      vendor,
      ...members.map(([userId]) => userId),
    ]),
  ];
  return { users, chats };
}

if (import.meta.main) {
  noArgumentsOrExit(
    "usage: deno task seed\n" +
      "adds demo users, vendors with members, chats and a conversation to the database of\n" +
      "`deno task dev` (DATABASE_URL, else the embedded one), and prints a page link per user",
  );
  // a variable set but empty is unset, as for `deno task dev` (a sourced .env.example)
  const env = overDefaults({}, Deno.env.toObject());
  const signingSecret = env.JWT_SECRET ??
    (env.JWT_PUBLIC_KEY || env.JWT_JWKS_URL ? undefined : (await devSecretsOrExit()).JWT_SECRET);
  const devPort = Number(env.PORT ?? 8000);
  const config = configOrExit(() =>
    requireWritableDataDir(loadConfig({
      ...(signingSecret ? { JWT_SECRET: signingSecret } : {}),
      ...env,
      PORT: "0",
      HOST: "127.0.0.1",
      GRPC_ENABLED: "0",
      DEMO_PAGE: "0",
      LOG_LEVEL: "warning",
    }))
  );
  let service;
  try {
    service = await startService(config);
  } catch (error) {
    if (!(error instanceof EmbeddedDatabaseInUse)) couldNotStart(error);
    console.error(error.message);
    Deno.exit(2);
  }
  const seeded = await seedDemo(service.chat).catch((error) =>
    couldNotAfter("seed", error, () => service.close())
  );
  await service.close();
  console.log(`seeded ${seeded.chats.length} chats:`);
  for (const chat of seeded.chats) {
    console.log(`  ${chat.id}  ${chat.user_id} <-> ${chat.vendor_id}`);
  }
  if (!signingSecret) {
    console.log("\nJWT_PUBLIC_KEY/JWT_JWKS_URL is configured: sign tokens with your issuer");
  } else {
    console.log(`\ntokens (24 h) and demo page links (deno task dev, port ${devPort}):`);
    for (const user of seeded.users) {
      const token = await signDevToken(signingSecret, user, {
        ttlSeconds: 24 * 3600,
        ...checkedClaims(config),
      });
      console.log(`  ${user.padEnd(10)}  http://localhost:${devPort}/#token=${token}`);
    }
  }
}
