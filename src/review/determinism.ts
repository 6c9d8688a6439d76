/**
 * What makes a mapping return different rows for the same window on two reads: a clock, a random
 * number, a numbering whose order has ties, a limit that picks any rows. A compare of such a
 * mapping shows differences that no edit made, and a run may send a conversion with values that
 * the next read would not give. Found by reading the SQL (comments and strings left out); the
 * warnings name the construct and the fix. `plan --check-determinism` reads the window twice.
 */
export function determinismWarnings(sql: string, file: string): string[] {
  const code = withoutCommentsAndStrings(sql).toLowerCase();
  const warnings: string[] = [];
  const clock = /\b(now\s*\(|current_timestamp\b|current_date\b|current_time\b|localtimestamp\b|localtime\b|clock_timestamp\s*\(|statement_timestamp\s*\(|transaction_timestamp\s*\(|getdate\s*\(|sysdate\b|timeofday\s*\()/.exec(code);
  if (clock) {
    warnings.push(`${file}: ${clock[1]!.replace(/\s*\($/, '()')} reads the clock: the same window gives other values on another day; use :window_start / :window_end, or a column`);
  }
  const random = /\b(random\s*\(|rand\s*\(|gen_random_uuid\s*\(|uuid_generate_v4\s*\(|newid\s*\(|uuid\s*\()/.exec(code);
  if (random) warnings.push(`${file}: ${random[1]!.replace(/\s*\($/, '()')} is random: every read gives other values`);
  for (const over of numberings(code)) {
    if (!over.orderBy) {
      warnings.push(`${file}: ${over.fn}() over (…) has no order by: rows are numbered in any order, differently on each read`);
    } else if (!/(^|[\s,.(])("?[a-z0-9_]*id"?)(\s+(asc|desc))?(\s*,|\s*$)/.test(over.orderBy)) {
      warnings.push(`${file}: ${over.fn}() over (… order by ${over.orderBy.trim()}) numbers ties in any order unless that order is unique; end it with a unique column (an id)`);
    }
  }
  if (limitWithoutOrder(code)) warnings.push(`${file}: limit without order by picks any rows, possibly others on each read`);
  return warnings;
}

/** Replaces comments and quoted text with spaces, so a word inside them is not read as SQL. */
function withoutCommentsAndStrings(sql: string): string {
  return sql.replace(/--[^\n]*|\/\*[\s\S]*?\*\/|'(?:[^']|'')*'|\$([a-z_]*)\$[\s\S]*?\$\1\$/gi, (m) => ' '.repeat(m.length));
}

function numberings(code: string): Array<{ fn: string; orderBy: string | undefined }> {
  const found: Array<{ fn: string; orderBy: string | undefined }> = [];
  const re = /\b(row_number|rank|dense_rank|ntile|first_value|last_value|nth_value)\s*\([^)]*\)\s*over\s*\(/g;
  for (let m = re.exec(code); m; m = re.exec(code)) {
    const clause = balanced(code, m.index + m[0].length);
    const order = /\border\s+by\s+([\s\S]*)$/.exec(clause);
    found.push({ fn: m[1]!, orderBy: order ? order[1]!.replace(/\b(rows|range|groups)\s+between[\s\S]*$/, '') : undefined });
  }
  return found;
}

/** The text from `start` to the parenthesis that closes the one opened just before it. */
function balanced(code: string, start: number): string {
  let depth = 1;
  for (let i = start; i < code.length; i++) {
    if (code[i] === '(') depth++;
    else if (code[i] === ')' && --depth === 0) return code.slice(start, i);
  }
  return code.slice(start);
}

/** A `limit` (or `fetch first`) at a nesting level with no `order by` before it at that level. */
function limitWithoutOrder(code: string): boolean {
  const ordered: boolean[] = [false];
  const re = /\(|\)|\border\s+by\b|\blimit\b|\bfetch\s+(first|next)\b/g;
  for (let m = re.exec(code); m; m = re.exec(code)) {
    if (m[0] === '(') ordered.push(false);
    else if (m[0] === ')') ordered.pop();
    else if (m[0].startsWith('order')) ordered[ordered.length - 1] = true;
    else if (!ordered[ordered.length - 1]) return true;
  }
  return false;
}
