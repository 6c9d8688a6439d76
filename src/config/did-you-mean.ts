/** The closest known name to a misspelt one, when it is close enough to be a likely typo. */
export function didYouMean(input: string, known: readonly string[]): string | undefined {
  // A prefix (revenue → revenue_cents) reads as a typo before any other near name (value).
  const prefixed = known.filter((k) => k.startsWith(input) || input.startsWith(k)).sort((a, b) => a.length - b.length)[0];
  if (prefixed && input.length >= 3) return prefixed;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const d = distance(input.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  // Up to a third of the letters changed reads as a typo.
  return bestDistance <= Math.max(2, Math.floor(input.length / 3)) ? best : undefined;
}

function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        (previous[j] ?? 0) + 1,
        (current[j - 1] ?? 0) + 1,
        (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}
