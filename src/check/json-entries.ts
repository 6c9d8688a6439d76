/**
 * The entries of a JSON object in the order they are written. JSON.parse cannot keep it: a JS
 * object lists integer-like keys (experiment ids!) in ascending numeric order, so
 * {"987654321": "1", "876543210": "2"} would come back reversed, and the classic call's x
 * parameters with it. Returns undefined if `text` is not a JSON object.
 */
export function orderedEntries(text: string): Array<[string, unknown]> | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
  const values = parsed as Record<string, unknown>;
  const keys: string[] = [];
  // The text is valid JSON (it parsed), so a shallow scan for the top-level keys is enough.
  let i = text.indexOf('{') + 1;
  let depth = 0;
  let expectKey = true;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === '"') {
      const end = stringEnd(text, i);
      if (depth === 0 && expectKey) keys.push(JSON.parse(text.slice(i, end + 1)) as string);
      i = end + 1;
      continue;
    }
    if (ch === '{' || ch === '[') depth++;
    else if (ch === '}' || ch === ']') {
      if (depth === 0) break;
      depth--;
    } else if (depth === 0 && ch === ':') expectKey = false;
    else if (depth === 0 && ch === ',') expectKey = true;
    i++;
  }
  // Duplicate keys: JSON.parse keeps the last value; keep the first position.
  return [...new Set(keys)].map((k) => [k, values[k]]);
}

function stringEnd(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length) {
    const ch = text[i];
    if (ch === '\\') i += 2;
    else if (ch === '"') return i;
    else i++;
  }
  return text.length - 1;
}
