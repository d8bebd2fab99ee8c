import type { PackageDefinition } from "@grpc/proto-loader";
import * as protoLoader from "@grpc/proto-loader";
import { protoPath as healthProtoPath } from "grpc-health-check";
import { fileURLToPath } from "node:url";
import { declareDependencies } from "./file_descriptors.ts";

/** proto/chat/admin/v1/admin.proto: the contract, for the server and for any client. */
export const ADMIN_PROTO_PATH = fileURLToPath(
  new URL("../proto/chat/admin/v1/admin.proto", import.meta.url),
);

/** The fully qualified name of the admin service. */
export const ADMIN_SERVICE = "chat.admin.v1.ChatAdmin";

/**
 * How messages look in JavaScript on both ends: field names as in the proto (snake_case),
 * 64-bit integers as numbers (counts and seqs stay far below 2^53), enums as their names, unset
 * scalars as their defaults and unset messages as null.
 */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

/**
 * The admin service and the standard health service in one definition, so that server
 * reflection describes both, with the imports between its files declared (grpcurl needs them).
 */
export async function loadAdminProto(): Promise<PackageDefinition> {
  const definition = await protoLoader.load([ADMIN_PROTO_PATH, healthProtoPath], LOADER_OPTIONS);
  declareDependencies(definition);
  return definition;
}
