import assert from "node:assert/strict";
import { failure, type Reply, Status } from "./support/admin_client.ts";
import { startCluster } from "./support/service.ts";
import { joinChat, sendText } from "./support/steps.ts";

Deno.test("AddVendorMember registers a member, changes a role, and ListVendorMembers lists them", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  const owner = await admin.call("AddVendorMember", {
    vendor_id: "acme",
    user_id: "olga",
    role: "VENDOR_ROLE_OWNER",
  });
  assert.equal(owner.vendor_id, "acme");
  assert.equal(owner.user_id, "olga");
  assert.equal(owner.role, "VENDOR_ROLE_OWNER");
  assert.ok(owner.created_at.seconds > 0);
  await admin.call("AddVendorMember", { vendor_id: "acme", user_id: "ari", role: 2 });
  const promoted = await admin.call("AddVendorMember", {
    vendor_id: "acme",
    user_id: "ari",
    role: "VENDOR_ROLE_OWNER",
  });
  assert.equal(promoted.role, "VENDOR_ROLE_OWNER");
  const { members } = await admin.call("ListVendorMembers", { vendor_id: "acme" });
  assert.deepEqual(members.map((member: Reply) => [member.user_id, member.role]), [
    ["olga", "VENDOR_ROLE_OWNER"],
    ["ari", "VENDOR_ROLE_OWNER"],
  ]);
  assert.deepEqual((await admin.call("ListVendorMembers", { vendor_id: "nobody" })).members, []);
});

Deno.test("AddVendorMember refuses a missing role, empty ids and a vendor as its own member", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  const cases: Array<[object, RegExp]> = [
    [{ vendor_id: "acme", user_id: "ari" }, /^role: /],
    [{ vendor_id: "acme", user_id: "ari", role: 9 }, /^role: /],
    [{ vendor_id: "", user_id: "ari", role: "VENDOR_ROLE_AGENT" }, /^vendor_id: is required$/],
    [{ vendor_id: "acme", user_id: "acme", role: "VENDOR_ROLE_AGENT" }, /^user_id: /],
  ];
  for (const [request, details] of cases) {
    const error = await failure(admin.call("AddVendorMember", request));
    assert.equal(error.code, Status.INVALID_ARGUMENT, JSON.stringify(request));
    assert.match(error.details, details);
  }
});

Deno.test("RemoveVendorMember takes the vendor's chats from the member's sockets on every instance", async () => {
  await using cluster = await startCluster({ grpc: true, instances: 2 });
  const admin = await cluster.admin(0);
  const chat = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  await admin.call("AddVendorMember", {
    vendor_id: "acme",
    user_id: "ari",
    role: "VENDOR_ROLE_AGENT",
  });
  const agent = await joinChat(cluster, "ari", chat.id, 1);
  await using alice = await joinChat(cluster, "alice", chat.id, 0);
  await sendText(alice, "ari", "hello agent");
  await agent.nextOfType("chat_message");

  await admin.call("RemoveVendorMember", { vendor_id: "acme", user_id: "ari" });
  assert.equal((await agent.closed).code, 4403);
  assert.deepEqual((await admin.call("ListVendorMembers", { vendor_id: "acme" })).members, []);
  const again = await failure(
    admin.call("RemoveVendorMember", { vendor_id: "acme", user_id: "ari" }),
  );
  assert.equal(again.code, Status.NOT_FOUND);
});
