import { readFileSync } from 'node:fs';
import { join as joinPath } from 'node:path';
import { packageRoot } from '../package-root.ts';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { didYouMean } from './did-you-mean.ts';

// ajv-formats is CommonJS with a default export; under NodeNext it arrives wrapped once more.
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

const schemaDir = joinPath(packageRoot, 'schema');

function load(name: string): object {
  return JSON.parse(readFileSync(joinPath(schemaDir, name), 'utf8')) as object;
}

// One compiler for the process; the schemas in schema/ are the same files editors validate with.
// strictRequired is off: with a discriminator, `required` names a property defined in the oneOf branches.
const ajv = new Ajv({ allErrors: true, verbose: true, useDefaults: true, discriminator: true, strict: true, strictRequired: false });
addFormats(ajv);

let jobValidator: ValidateFunction | undefined;
let configValidator: ValidateFunction | undefined;
let testsValidator: ValidateFunction | undefined;

export const validateJobSettings = (value: unknown): string[] =>
  check((jobValidator ??= ajv.compile(load('job.schema.json'))), value);

export const validateProjectConfig = (value: unknown): string[] =>
  check((configValidator ??= ajv.compile(load('config.schema.json'))), value);

export const validateMappingTests = (value: unknown): string[] =>
  check((testsValidator ??= ajv.compile(load('tests.schema.json'))), value);

/** Runs a validator (which fills in defaults) and turns its errors into sentences. */
function check(validate: ValidateFunction, value: unknown): string[] {
  if (validate(value)) return [];
  const errors = validate.errors ?? [];
  // oneOf/discriminator failures repeat what the branch errors already say.
  const useful = errors.filter((e) => e.keyword !== 'oneOf' && e.keyword !== 'if');
  return [...new Set((useful.length ? useful : errors).map(describe))];
}

function describe(error: ErrorObject): string {
  const at = keyPath(error.instancePath);
  const params = error.params as Record<string, unknown>;
  const name = at || 'the file';
  switch (error.keyword) {
    case 'required':
      return `${join(at, String(params.missingProperty))} is required`;
    case 'additionalProperties': {
      const extra = String(params.additionalProperty);
      const known = Object.keys((error.parentSchema as { properties?: object } | undefined)?.properties ?? {});
      const guess = didYouMean(extra, known);
      return `${join(at, extra)} is not a known setting${guess ? ` (did you mean "${guess}"?)` : ` (known: ${known.join(', ')})`}`;
    }
    case 'type':
      return `${name} must be ${article(String(params.type))}`;
    case 'enum':
      return `${name} must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'const':
      return `${name} must be ${JSON.stringify(params.allowedValue)}`;
    case 'exclusiveMinimum':
      return `${name} must be a number greater than ${String(params.limit)}`;
    case 'minimum':
      return `${name} must be at least ${String(params.limit)}`;
    case 'maximum':
      return `${name} must be at most ${String(params.limit)}`;
    case 'minLength':
      return `${name} must not be empty`;
    case 'pattern':
      return `${name} ${patternRule(at, String(params.pattern))}`;
    case 'format':
      return `${name} must be ${formatRule(String(params.format))}`;
    case 'discriminator': {
      const tag = String(params.tag);
      return `${join(at, tag)} must be one of the known ${tag}s (${discriminatorValues(error).join(', ')})`;
    }
    default:
      return `${name} ${error.message ?? 'is invalid'}`;
  }
}

function keyPath(pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'))
    .join('.');
}

const join = (at: string, key: string): string => (at ? `${at}.${key}` : key);

const article = (type: string): string =>
  ({ integer: 'a whole number', number: 'a number', string: 'a string (in quotes)', boolean: 'true or false', object: 'an object ({...})', array: 'a list ([...])' })[type] ??
  `a ${type}`;

function patternRule(at: string, pattern: string): string {
  const last = at.split('.').at(-1) ?? '';
  if (pattern.startsWith('^P(')) return 'must be an ISO 8601 duration in days, hours, minutes or seconds, e.g. "PT2H" or "P1D"';
  if (last === 'cursor') return 'must be a lower-case column name (letters, digits, _)';
  if (/Id$/.test(last)) return 'must be a string of digits, e.g. "1234567"';
  return 'has the wrong form';
}

function formatRule(format: string): string {
  if (format === 'date-time') return 'an ISO 8601 time with a zone, e.g. "2026-01-01T00:00:00Z"';
  if (format === 'uri') return 'an absolute URL, e.g. "https://logx.optimizely.com/v1/events"';
  return `a valid ${format}`;
}

function discriminatorValues(error: ErrorObject): string[] {
  const branches = (error.parentSchema as { oneOf?: Array<{ $ref?: string; properties?: Record<string, { const?: string; enum?: string[] }> }> } | undefined)?.oneOf ?? [];
  const tag = String((error.params as { tag?: string }).tag);
  return branches.flatMap((b) => {
    const schema = b.$ref ? (ajv.getSchema(`https://convey.dev/schema/job.schema.json${b.$ref}`)?.schema as typeof b | undefined) : b;
    const prop = schema?.properties?.[tag];
    return prop?.const ? [prop.const] : (prop?.enum ?? []);
  });
}
