/**
 * Imported first by test files that must not depend on the machine's zone: the process then runs
 * in America/New_York (UTC−5 in March), so anything reading or printing time in the local zone —
 * Node's Date, DuckDB's default session zone — is off by hours and shows.
 */
process.env.TZ = 'America/New_York';
