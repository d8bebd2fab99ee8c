import type { AdminStore } from "../../chat/ports.ts";
import type { ChatService } from "../../chat/service.ts";
import type { PageTokens } from "../page_token.ts";

/** What the unary handlers stand on: the domain service for changes, the admin store for lists. */
export interface HandlerDeps {
  service: ChatService;
  queries: AdminStore;
  tokens: PageTokens;
}
