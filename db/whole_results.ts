import type { Sql } from "postgres";
import { type StoreCalls, thenForCall } from "./store_calls.ts";

/**
 * `sql` whose results never start with holes, nor those of the connections it reserves.
 *
 * postgres.js 3.4 resets its count of a result's rows only when a statement completes. After one
 * that failed having sent rows (cancelled, its connection ended by a failover or
 * `pg_terminate_backend`, an error in a later row), the next result on that connection starts
 * with as many holes, its own rows all there after them (porsager/postgres#1119, #1181; still so
 * in 3.4.10). Read as rows, a hole is a message that is not there, a chat one is not a member of,
 * or a batch that fails whole.
 *
 * With `calls`, a statement sent for a store call is cancelled once that call gives up, and not
 * sent if it has (see store_calls.ts); but a rollback always goes, as it is what gives a
 * reserved connection back out of the transaction the call left.
 */
export function withWholeResults(sql: Sql, calls?: StoreCalls): Sql {
  return new Proxy(sql, {
    apply: (target, self, args) => readWhole(Reflect.apply(target, self, args), calls),
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (property === "unsafe") {
        return (...args: Parameters<Sql["unsafe"]>) =>
          readWhole(target.unsafe(...args), args[0] === "rollback" ? undefined : calls);
      }
      if (property === "reserve") {
        return async () => withWholeResults(await target.reserve(), calls);
      }
      return value;
    },
  });
}

/**
 * A statement (or a fragment, never awaited) whose result comes without its leading holes, and
 * that goes with the store call it is sent for, if any.
 */
function readWhole<T>(statement: T, calls: StoreCalls | undefined): T {
  if (!(statement instanceof Promise)) return statement; // sql(identifier), sql(object): helpers
  const then = statement.then;
  Object.defineProperty(statement, "then", {
    value(onFulfilled?: (value: unknown) => unknown, onRejected?: (reason: unknown) => unknown) {
      const whole = (result: unknown) =>
        onFulfilled ? onFulfilled(withoutHoles(result)) : withoutHoles(result);
      // asked when the statement is sent (awaited), in the context of the code that sends it
      const signal = calls?.signal();
      return signal === undefined
        ? then.call(this, whole, onRejected)
        : thenForCall(this, then, signal, whole, onRejected);
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
