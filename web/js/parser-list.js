// The service's parsers with their JSON Schemas and command templates, loaded once per token
// (updates.js forgets them when the token changes).

import { api } from './api.js';
import { state } from './state.js';

export async function loadParsers() {
  if (state.parsers) return state.parsers;
  const rows = await api('/api/parsers');
  state.parsers = Array.isArray(rows) ? rows : [];
  return state.parsers;
}
