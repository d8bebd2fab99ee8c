/**
 * Moves `Date.now()` `ms` ahead until disposed, for what ages by the wall clock (jose's key set,
 * the JWKS retry pause): waiting that out would take minutes. Nested uses add up.
 */
export function clockAhead(ms: number): Disposable {
  const now = Date.now;
  Date.now = () => now() + ms;
  return { [Symbol.dispose]: () => void (Date.now = now) };
}

/**
 * Moves `performance.now()` `ms` ahead until disposed, for what lasts by the monotonic clock (how
 * long a client's connection stayed open). Nested uses add up.
 */
export function monotonicAhead(ms: number): Disposable {
  const now = performance.now;
  performance.now = () => now.call(performance) + ms;
  return { [Symbol.dispose]: () => void (performance.now = now) };
}
