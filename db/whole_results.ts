import type { Sql } from "postgres";

/**
 * `sql` whose results never start with holes, nor those of the connections it reserves.
 *
 * postgres.js 3.4 resets its count of a result's rows only when a statement completes. After one
 * that failed having sent rows (cancelled, its connection ended by a failover or
 * `pg_terminate_backend`, an error in a later row), the next result on that connection starts
 * with as many holes, its own rows all there after them (porsager/postgres#1119, #1181; still so
 * in 3.4.10). Read as rows, a hole is a message that is not there, a chat one is not a member of,
 * or a batch that fails whole.
 */
export function withWholeResults(sql: Sql): Sql {
  return new Proxy(sql, {
    apply: (target, self, args) => readWhole(Reflect.apply(target, self, args)),
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (property === "unsafe") {
        return (...args: Parameters<Sql["unsafe"]>) => readWhole(target.unsafe(...args));
      }
      if (property === "reserve") {
        return async () => withWholeResults(await target.reserve());
      }
      return value;
    },
  });
}

/** A statement (or a fragment, never awaited) whose result comes without its leading holes. */
function readWhole<T>(statement: T): T {
  if (!(statement instanceof Promise)) return statement; // sql(identifier), sql(object): helpers
  const then = statement.then;
  Object.defineProperty(statement, "then", {
    value(onFulfilled?: (value: unknown) => unknown, onRejected?: (reason: unknown) => unknown) {
      return then.call(
        this,
        (result: unknown) => onFulfilled ? onFulfilled(withoutHoles(result)) : withoutHoles(result),
        onRejected,
      );
    },
  });
  return statement;
}

/** The result itself, its rows moved to the front: its count, columns and statement stay. */
function withoutHoles(result: unknown): unknown {
  if (!Array.isArray(result) || result.length === 0 || 0 in result) return result;
  const rows = result.filter(() => true); // filter passes over holes
  result.length = 0;
  result.push(...rows);
  return result;
}
