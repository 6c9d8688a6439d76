/**
 * A first mapping for `convey new --from <table>`: for each canonical column, the table's column
 * that most likely holds it, by name and type, with what was assumed on the way (dollars to
 * cents, a timestamp without zone read as UTC). A guess is a suggestion to confirm, never silent:
 * each gets a comment in the SQL, a TODO when nobody confirmed it.
 */
export interface TableColumn {
  name: string;
  /** As the catalogue writes it: "timestamp with time zone", "numeric(12,2)", "json", … */
  type: string;
}

export interface Guess {
  /** The canonical column. */
  target: string;
  /** The SQL expression (over alias t), or undefined when nothing fits. */
  expression: string | undefined;
  /** What was assumed, for the comment; undefined when the column matches by name and type exactly. */
  assumption: string | undefined;
}

export interface MappingGuess {
  guesses: Guess[];
  /** The table column the job's window is read on (occurred_at's, or a load time's). */
  cursorColumn: string | undefined;
  cursor: 'occurred_at' | 'loaded_at';
  /** Columns of the table no guess uses. */
  unused: string[];
}

const isTime = (c: TableColumn): boolean => /timestamp|datetime|^date$/i.test(c.type);
const isZoned = (c: TableColumn): boolean => /with time zone|timestamptz/i.test(c.type);
const isJson = (c: TableColumn): boolean => /json|variant|struct|map/i.test(c.type);
const isInteger = (c: TableColumn): boolean => /^(integer|bigint|smallint|int\d?|int8|int4|hugeint)$/i.test(c.type);
const isNumber = (c: TableColumn): boolean => isInteger(c) || /numeric|decimal|double|real|float|money/i.test(c.type);
const q = (name: string): string => (/^[a-z_][a-z0-9_]*$/.test(name) ? name : `"${name.replaceAll('"', '""')}"`);

function pick(columns: readonly TableColumn[], used: Set<string>, patterns: readonly RegExp[], accept: (c: TableColumn) => boolean = () => true): TableColumn | undefined {
  for (const pattern of patterns) {
    const found = columns.find((c) => !used.has(c.name) && pattern.test(c.name) && accept(c));
    if (found) return found;
  }
  return undefined;
}

export function guessMapping(columns: readonly TableColumn[]): MappingGuess {
  const used = new Set<string>();
  const guesses: Guess[] = [];
  const take = (target: string, column: TableColumn | undefined, expression?: (col: string) => string, assumption?: (c: TableColumn) => string | undefined): void => {
    if (!column) {
      guesses.push({ target, expression: undefined, assumption: undefined });
      return;
    }
    used.add(column.name);
    const col = `t.${q(column.name)}`;
    guesses.push({ target, expression: expression ? expression(col) : col, assumption: assumption?.(column) ?? (column.name === target ? undefined : `${column.name} (${column.type})`) });
  };

  take('conversion_id', pick(columns, used, [/^conversion_id$/, /^(order|transaction|purchase|sale|conversion)_?(id|number|no)$/i, /^id$/i, /_id$/i]), undefined, (c) => `${c.name} (${c.type}): unique per conversion? Optimizely dedupes on it`);
  const occurred = pick(columns, used, [/^occurred_at$/, /^(closed|ordered|purchased|converted|completed|paid)_?(at|on|time)?$/i, /^(created|event)_?(at|time)$/i, /(_at|_time|time|date)$/i], isTime);
  take('occurred_at', occurred, undefined, (c) => (isZoned(c) ? (c.name === 'occurred_at' ? undefined : `${c.name} (${c.type})`) : `${c.name} (${c.type}) has no time zone: read as UTC`));
  take('visitor_id', pick(columns, used, [/^visitor_id$/, /visitor/i, /optimizely/i, /^(user|customer|client)_?id$/i]), undefined, (c) => (/visitor|optimizely/i.test(c.name) ? (c.name === 'visitor_id' ? undefined : `${c.name}`) : `${c.name}: is this Optimizely's visitor id (the one the browser was bucketed with)?`));
  take('event_key', pick(columns, used, [/^event_key$/, /^event_?(name|type)?$/i]));
  take('event_id', pick(columns, used, [/^event_id$/, /^(goal|entity)_?id$/i]));
  const cents = pick(columns, used, [/cents/i], isNumber);
  if (cents) take('revenue_cents', cents, isInteger(cents) ? undefined : (col) => `round(${col})::bigint`);
  else {
    const money = pick(columns, used, [/^revenue/i, /^(total|amount|price|value|order_total|grand_total)/i], isNumber);
    take('revenue_cents', money, (col) => `round(${col} * 100)::bigint`, (c) => `${c.name} (${c.type}) read as dollars: × 100 to cents`);
  }
  const quantity = pick(columns, used, [/^(quantity|qty|items?)$/i], isNumber);
  if (quantity) take('quantity', quantity);
  const experiments = pick(columns, used, [/^experiments$/, /bucket|experiment|variation|decision/i], isJson);
  if (experiments) take('experiments', experiments, undefined, (c) => `${c.name} (${c.type}): a JSON object {"experimentId": "variationId"}?`);
  else {
    const experimentId = pick(columns, used, [/^experiment_?id$/i]);
    const variationId = pick(columns, used, [/^variation_?id$/i]);
    if (experimentId && variationId) {
      take('experiment_id', experimentId);
      take('variation_id', variationId);
    }
  }
  const campaign = pick(columns, used, [/^campaign_?id$/i]);
  if (campaign) take('campaign_id', campaign);

  // A load time beats the event time as the cursor: rows that land late are still read.
  const loaded = pick(columns, used, [/^(loaded|inserted|ingested|synced|updated)_?(at|time)$/i, /^_?(etl|dbt)_?(loaded|updated)_?at$/i], isTime);
  const unused = columns.filter((c) => !used.has(c.name) && c.name !== loaded?.name).map((c) => c.name);
  return { guesses, cursorColumn: loaded?.name ?? occurred?.name, cursor: loaded ? 'loaded_at' : 'occurred_at', unused };
}

/**
 * The job's SQL: one line per canonical column, a comment per guess (`-- guess:` when confirmed
 * on a terminal, `-- TODO check:` otherwise), the columns left out listed, and the window on the
 * cursor column so the warehouse reads only what it needs.
 */
export function mappingSql(table: string, guess: MappingGuess, confirmed: boolean): string {
  const mark = confirmed ? 'guess:' : 'TODO check:';
  const lines = guess.guesses.map((g) => {
    if (!g.expression) return { text: `  null as ${g.target}`, comment: `-- TODO: no column looks like ${g.target}; write it, or delete the line if the destination does not need it` };
    return { text: `  ${g.expression} as ${g.target}`, comment: g.assumption ? `-- ${mark} ${g.assumption}` : '' };
  });
  if (guess.cursor === 'loaded_at') lines.push({ text: `  t.${q(guess.cursorColumn!)} as loaded_at`, comment: `-- ${mark} ${guess.cursorColumn} is when a row landed: the window is read on it (late rows are not missed)` });
  const width = Math.max(...lines.map((l) => l.text.length)) + 1;
  const select = lines.map((l, i) => `${(l.text + (i < lines.length - 1 ? ',' : '')).padEnd(width + 1)}${l.comment}`.trimEnd());
  const cursorColumn = guess.cursorColumn ? `t.${q(guess.cursorColumn)}` : undefined;
  return [
    `-- Written by convey new from ${table}. Each line is one convey column (README "Writing a job");`,
    `-- check every guess, then run convey plan and convey test.`,
    ...(guess.unused.length ? [`-- Left out: ${guess.unused.join(', ')}.`] : []),
    'select',
    ...select,
    `from ${table} t`,
    ...(cursorColumn ? [`where ${cursorColumn} >= :window_start`, `  and ${cursorColumn} <  :window_end`] : ['-- TODO: no timestamp column: the window cannot be read']),
    '',
  ].join('\n');
}
