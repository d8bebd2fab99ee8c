/** `/readyz` of the service at `httpUrl`: its status and its JSON body. */
export async function readyz(httpUrl: string) {
  const response = await fetch(`${httpUrl}/readyz`);
  return { status: response.status, body: await response.json() };
}
