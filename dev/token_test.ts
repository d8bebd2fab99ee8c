import assert from "node:assert/strict";
import { decodeJwt } from "jose";
import { runDevTask } from "../tests/support/dev_task.ts";

const env = { JWT_SECRET: "a development secret of at least thirty-two bytes" };

Deno.test("`deno task token` signs a token for the user that lasts --ttl seconds", async () => {
  const cwd = await Deno.makeTempDir();
  try {
    const { code, stdout, stderr } = await runDevTask("token", {
      cwd,
      env,
      args: ["alice", "--ttl", "60"],
    });
    assert.equal(code, 0, stderr);
    const claims = decodeJwt(stdout.trim());
    assert.equal(claims.sub, "alice");
    assert.equal(claims.exp! - claims.iat!, 60);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

for (
  const args of [["alice", "--ttl", "abc"], ["alice", "--ttl", "1.5"], ["alice", "--tll", "5"]]
) {
  Deno.test(`\`deno task token ${args.join(" ")}\` says what is wrong in two lines and exits 2`, async () => {
    const cwd = await Deno.makeTempDir();
    try {
      const { code, stdout, stderr } = await runDevTask("token", { cwd, env, args });
      assert.equal(code, 2, stderr);
      assert.equal(stdout, "");
      assert.match(stderr, /^.+\nusage: deno task token <user_id> \[--ttl seconds\]$/);
    } finally {
      await Deno.remove(cwd, { recursive: true });
    }
  });
}

for (const help of ["--help", "-h"]) {
  Deno.test(`\`deno task token ${help}\` prints its usage and exits 0`, async () => {
    const cwd = await Deno.makeTempDir();
    try {
      const { code, stdout, stderr } = await runDevTask("token", { cwd, env, args: [help] });
      assert.equal(code, 0, stderr);
      assert.equal(stdout, "usage: deno task token <user_id> [--ttl seconds]\n");
    } finally {
      await Deno.remove(cwd, { recursive: true });
    }
  });
}

Deno.test("`deno task token` says why a .dev/secrets.json it cannot read was not read, not that there is none", async () => {
  const cwd = await Deno.makeTempDir();
  try {
    // a directory where the file should be: read, it fails otherwise than not found
    await Deno.mkdir(`${cwd}/.dev/secrets.json`, { recursive: true });
    const { code, stdout, stderr } = await runDevTask("token", { cwd, env: {}, args: ["alice"] });
    assert.equal(code, 2, stderr);
    assert.equal(stdout, "");
    assert.doesNotMatch(stderr, /no \.dev\/secrets\.json/);
    assert.match(stderr, /directory/i);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("`deno task token` signs for the JWT_ISSUER and JWT_AUDIENCE the service checks", async () => {
  const cwd = await Deno.makeTempDir();
  try {
    const { code, stdout, stderr } = await runDevTask("token", {
      cwd,
      env: { ...env, JWT_ISSUER: "https://auth.example", JWT_AUDIENCE: "chat" },
      args: ["alice"],
    });
    assert.equal(code, 0, stderr);
    // without them the service refuses the token (`iss`/`aud` missing)
    const claims = decodeJwt(stdout.trim());
    assert.equal(claims.iss, "https://auth.example");
    assert.equal(claims.aud, "chat");
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

for (const issuerKey of ["JWT_PUBLIC_KEY", "JWT_JWKS_URL"]) {
  Deno.test(`\`deno task token\` with ${issuerKey} set signs nothing the service would refuse, and says so in one line`, async () => {
    const cwd = await Deno.makeTempDir();
    try {
      const { code, stdout, stderr } = await runDevTask("token", {
        cwd,
        env: { [issuerKey]: "set by the test" },
        args: ["alice"],
      });
      assert.equal(code, 2, stderr);
      assert.equal(stdout, "");
      assert.match(stderr, new RegExp(`^${issuerKey} is set: [^\\n]+$`));
    } finally {
      await Deno.remove(cwd, { recursive: true });
    }
  });
}
