/**
 * Moves `Date.now()` `ms` ahead until disposed, for what ages by the wall clock (jose's key set,
 * the JWKS retry pause): waiting that out would take minutes. Nested uses add up.
 */
export function clockAhead(ms: number): Disposable {
  const now = Date.now;
  Date.now = () => now() + ms;
  return { [Symbol.dispose]: () => void (Date.now = now) };
}
