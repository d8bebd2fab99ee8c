import { z } from "zod";
import type { VendorRole } from "../../chat/types.ts";
import { toProtoMember, VENDOR_ROLES } from "../convert.ts";
import { parseRequest, userId } from "../requests.ts";
import type { HandlerDeps } from "./deps.ts";

const roleNames = Object.entries(VENDOR_ROLES) as Array<[VendorRole, string]>;

const role = z.string().transform((name, ctx) => {
  const found = roleNames.find(([, protoName]) => protoName === name);
  if (!found) {
    ctx.addIssue({ code: "custom", message: "must be VENDOR_ROLE_OWNER or VENDOR_ROLE_AGENT" });
    return z.NEVER;
  }
  return found[0];
});

const addVendorMemberRequest = z
  .object({ vendor_id: userId, user_id: userId, role })
  .refine((request) => request.user_id !== request.vendor_id, {
    path: ["user_id"],
    message: "must differ from vendor_id",
  });
const removeVendorMemberRequest = z.object({ vendor_id: userId, user_id: userId });
const listVendorMembersRequest = z.object({ vendor_id: userId });

/** AddVendorMember, RemoveVendorMember, ListVendorMembers. */
export function createMemberHandlers({ service }: HandlerDeps) {
  return {
    /** Adds a member or changes their role. INVALID_ARGUMENT: empty ids, unknown role. */
    async AddVendorMember(request: unknown) {
      const { vendor_id, user_id, role } = parseRequest(addVendorMemberRequest, request);
      return toProtoMember(await service.addVendorMember(vendor_id, user_id, role));
    },

    /** Removes a member; their sockets lose the vendor's chats. NOT_FOUND: not a member. */
    async RemoveVendorMember(request: unknown) {
      const { vendor_id, user_id } = parseRequest(removeVendorMemberRequest, request);
      await service.removeVendorMember(vendor_id, user_id);
      return {};
    },

    /** Every member of a vendor, oldest first. */
    async ListVendorMembers(request: unknown) {
      const { vendor_id } = parseRequest(listVendorMembersRequest, request);
      const members = await service.listVendorMembers(vendor_id);
      return { members: members.map(toProtoMember) };
    },
  };
}
