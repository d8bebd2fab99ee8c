/**
 * The ceiling: single-row inserts of a message-shaped row per second, by pgbench with a
 * custom script and 8 clients, on the same PostgreSQL in the same run.
 */
export async function rawInsertRate(databaseUrl: string, seconds: number): Promise<number> {
  const url = new URL(databaseUrl);
  // from the URL, as the service takes it: psql would ask at the terminal, pgbench fail
  const env: Record<string, string> = url.password
    ? { PGPASSWORD: decodeURIComponent(url.password) }
    : {};
  const script = await Deno.makeTempFile({ suffix: ".sql" });
  await Deno.writeTextFile(
    script,
    `\\set n random(1, 1000000000)
insert into bench_raw_messages (chat_id, seq, sender_id, sender_side, receiver_id, media_type, content)
values ('00000000-0000-0000-0000-000000000001', :n, 'customer', 'customer', 'vendor', 'text',
        'benchmark message with some words in it');
`,
  );
  const psql = (sql: string) =>
    new Deno.Command("psql", {
      args: [
        "-q",
        "-h",
        url.hostname,
        "-p",
        url.port || "5432",
        "-U",
        url.username || "postgres",
        "-d",
        url.pathname.slice(1),
        "-c",
        sql,
      ],
      env,
      stdout: "null",
    }).output();
  await psql(`create table if not exists bench_raw_messages (
      id uuid primary key default gen_random_uuid(), chat_id uuid not null, seq integer not null,
      sender_id text not null, sender_side text not null, receiver_id text not null,
      media_type text not null, content text, created_at timestamptz not null default now())`);
  try {
    const output = await new Deno.Command("pgbench", {
      args: [
        "-n",
        "-c",
        "8",
        "-j",
        "2",
        "-T",
        String(seconds),
        "-f",
        script,
        "-h",
        url.hostname,
        "-p",
        url.port || "5432",
        "-U",
        url.username || "postgres",
        url.pathname.slice(1),
      ],
      env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(output.stdout);
    const match = /tps = ([\d.]+)/.exec(text);
    if (!match) throw new Error(`pgbench said: ${text}${new TextDecoder().decode(output.stderr)}`);
    return Math.round(Number(match[1]));
  } finally {
    await psql("drop table if exists bench_raw_messages");
    await Deno.remove(script);
  }
}
