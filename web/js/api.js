// Client of the REST API: JSON requests with the admin token; failures become an ApiError
// carrying the `{"error": {"code", "message"}}` of the response.

import { askForToken, currentToken } from './auth.js';

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    // The request field a 422 is about, when the server named one.
    this.field = field;
  }
}

/** A request to the API. A 401 asks for a token and tries again with it. */
export async function api(path, { method = 'GET', body } = {}) {
  for (;;) {
    const token = currentToken();
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (token) headers.Authorization = `Bearer ${token}`;
    let res;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
      });
    } catch {
      throw new ApiError(0, 'network', 'Cannot reach the server.');
    }
    if (res.status === 401) {
      if (currentToken() !== token) continue; // signed in meanwhile: just retry
      try {
        await askForToken(token
          ? 'The stored token was refused. Enter the admin token or the read token.'
          : 'This server needs a token: the admin token, or the read token to watch without changing anything.');
      } catch {
        throw new ApiError(401, 'unauthorized', 'Sign in to load this data.');
      }
      continue;
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
    if (!res.ok) {
      const err = data && typeof data === 'object' ? data.error : null;
      const message = (err && err.message) || `${res.status} ${res.statusText || 'error'}`.trim();
      throw new ApiError(res.status, (err && err.code) || `http_${res.status}`, message, err && err.field);
    }
    return data;
  }
}

export function errorText(err) {
  if (err instanceof ApiError) return err.message;
  return (err && err.message) || String(err);
}
