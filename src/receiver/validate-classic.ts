import { show } from './validate-events.ts';

/**
 * Validation of a classic offline-conversion call (`GET /event?...`), following the rules in
 * PROTOCOL.md §1. The real endpoint answers 200 to anything; this one says what is wrong, because
 * a silent 200 is how a broken integration goes unnoticed for months.
 */

/** The parameters of a valid classic call, decoded. */
export interface ClassicConversion {
  /** `a`: project id. */
  projectId: string;
  /** `n`: event (goal) name. */
  eventName: string;
  /** `u`: end-user id. */
  userId: string;
  /** `x{experimentId}={variationId}[_{variationId}...]`, in query order. */
  experiments: Array<{ experimentId: string; variationIds: string[] }>;
  /** `v`: revenue in integer cents. */
  revenue?: number;
  /** `g`: goal ids. */
  goalIds?: string[];
  /** `d`: account id. */
  accountId?: string;
  /** `s{segmentId}={value}`, in query order. */
  segments?: Array<{ segmentId: string; value: string }>;
  /** `time`: epoch seconds. */
  time?: number;
  /** `src`: client identifier. */
  src?: string;
}

export interface ClassicCheck {
  /** Problems, each `<parameter>: <rule>, got <value>`; empty when valid. */
  problems: string[];
  /** The decoded `[name, value]` pairs in query order (what the sender really sent). */
  pairs: Array<[string, string]>;
  /** Present when `problems` is empty. */
  conversion?: ClassicConversion;
}

const DIGITS = /^[0-9]+$/;
const INTEGER = /^-?[0-9]+$/;
const VARIATIONS = /^[0-9]+(?:_[0-9]+)*$/;
const GOALS = /^[0-9]+(?:,[0-9]+)*$/;
const EXPERIMENT_PARAM = /^x([0-9]+)$/;
const SEGMENT_PARAM = /^s([0-9]+)$/;
const PROJECT_HOST = /^([0-9]+)\.log\.optimizely\.com$/i;

/**
 * Check a raw query string (the part after `?`, still percent-encoded). `host` is the request's
 * Host header: for `{projectId}.log.optimizely.com`, `a` must name the same project. Pure.
 */
export function validateClassicQuery(rawQuery: string, host?: string): ClassicCheck {
  const problems: string[] = [];
  const pairs: Array<[string, string]> = [];

  for (const part of rawQuery.split('&')) {
    if (part === '') continue; // `a=1&&n=2` and a trailing `&` are harmless
    const eq = part.indexOf('=');
    const rawName = eq === -1 ? part : part.slice(0, eq);
    const rawValue = eq === -1 ? '' : part.slice(eq + 1);
    const name = decode(rawName);
    const value = decode(rawValue);
    if (name === undefined || value === undefined) {
      problems.push(`${rawName}: malformed percent-encoding in ${show(part)}`);
      continue;
    }
    pairs.push([name, value]);
  }

  const seen = new Set<string>();
  const conversion: Partial<ClassicConversion> & { experiments: ClassicConversion['experiments'] } = { experiments: [] };
  for (const [name, value] of pairs) {
    if (seen.has(name)) {
      problems.push(`${name}: given more than once`);
      continue;
    }
    seen.add(name);
    const experiment = EXPERIMENT_PARAM.exec(name);
    const segment = SEGMENT_PARAM.exec(name);
    if (experiment) {
      if (!VARIATIONS.test(value)) {
        problems.push(`${name}: variation id must be digits (multivariate: digits joined by _), got ${show(value)}`);
      } else {
        conversion.experiments.push({ experimentId: experiment[1]!, variationIds: value.split('_') });
      }
      continue;
    }
    if (segment) {
      if (value === '') problems.push(`${name}: segment value must not be empty`);
      else (conversion.segments ??= []).push({ segmentId: segment[1]!, value });
      continue;
    }
    switch (name) {
      case 'a':
        if (DIGITS.test(value)) conversion.projectId = value;
        else problems.push(`a: must be the project id (digits), got ${show(value)}`);
        break;
      case 'n':
        if (value !== '') conversion.eventName = value;
        else problems.push('n: the event name must not be empty');
        break;
      case 'u':
        if (value !== '') conversion.userId = value;
        else problems.push('u: the end-user id must not be empty');
        break;
      case 'v':
        if (INTEGER.test(value) && Number.isSafeInteger(Number(value))) conversion.revenue = Number(value);
        else problems.push(`v: must be integer cents ($5.00 is v=500), got ${show(value)}`);
        break;
      case 'g':
        if (GOALS.test(value)) conversion.goalIds = value.split(',');
        else problems.push(`g: must be goal ids (digits) separated by commas, got ${show(value)}`);
        break;
      case 'd':
        if (DIGITS.test(value)) conversion.accountId = value;
        else problems.push(`d: must be the account id (digits), got ${show(value)}`);
        break;
      case 'time':
        if (DIGITS.test(value) && value.length === 10) conversion.time = Number(value);
        else if (DIGITS.test(value) && value.length === 13) {
          problems.push(`time: must be epoch seconds (10 digits), got ${value} (milliseconds?)`);
        } else problems.push(`time: must be epoch seconds (10 digits), got ${show(value)}`);
        break;
      case 'src':
        conversion.src = value;
        break;
      default:
        problems.push(`${name}: unknown parameter (classic knows a, n, u, x{experimentId}, v, g, d, s{segmentId}, time, src)`);
    }
  }

  if (!seen.has('a')) problems.push('a: required (the project id, digits)');
  if (!seen.has('n')) problems.push('n: required (the event name)');
  if (!seen.has('u')) problems.push('u: required (the end-user id)');
  if (![...seen].some((name) => EXPERIMENT_PARAM.test(name))) {
    problems.push('x{experimentId}: at least one experiment=variation pair is required, e.g. x987654321=1111111');
  }

  const hostName = host?.replace(/:[0-9]+$/, '');
  const hostProject = hostName === undefined ? undefined : PROJECT_HOST.exec(hostName)?.[1];
  if (hostProject !== undefined && conversion.projectId !== undefined && conversion.projectId !== hostProject) {
    problems.push(`a: must equal the project id in the host name ${hostName}, got ${show(conversion.projectId)}`);
  }

  if (problems.length > 0) return { problems, pairs };
  return { problems, pairs, conversion: conversion as ClassicConversion };
}

/** Form-style decoding (`+` is a space), undefined for malformed percent-encoding. */
function decode(text: string): string | undefined {
  if (!text.includes('%') && !text.includes('+')) return text;
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}
