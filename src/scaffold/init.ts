import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { conveyPublished, conveyVersion, packageRoot, schemaRef } from '../package-root.ts';

/** The secrets the two workflows read, for the message after init and the README it writes. */
export const WORKFLOW_SECRETS = {
  'convey-nightly.yml': ['WAREHOUSE_URL', 'CONVEY_STATE_URL', 'OPTIMIZELY_ACCOUNT_ID'],
  'convey-plan.yml': ['WAREHOUSE_READONLY_URL', 'CONVEY_STATE_READONLY_URL', 'OPTIMIZELY_ACCOUNT_ID'],
} as const;

export interface InitResult {
  written: string[];
  /** Files that existed and were left as they were. */
  kept: string[];
  /** The dependency on convey written to package.json. */
  conveySpec: string;
}

/**
 * The dependency on convey when `--convey` is not given. While convey is not on the npm registry
 * (the package called `convey` there is an unrelated one), a version range would install that
 * package or fail: the default is the copy of convey that is running, as a folder dependency.
 */
function defaultConveySpec(dir: string): string {
  if (conveyPublished) return `^${conveyVersion}`;
  return `file:${relative(dir, packageRoot).split('\\').join('/') || '.'}`;
}

/**
 * A jobs repository: the project's own package.json depending on convey (so `npx convey` and the
 * workflows run the version the lockfile pins), config/ with the embedded example source and the
 * production one, jobs/, the workflows, and a .gitignore for .convey/. Existing files are kept.
 */
export function initProject(dir: string, options: { conveySpec?: string; name?: string } = {}): InitResult {
  const conveySpec = options.conveySpec ?? defaultConveySpec(dir);
  const result: InitResult = { written: [], kept: [], conveySpec };
  const write = (path: string, content: string | (() => void)): void => {
    const full = join(dir, path);
    if (existsSync(full)) {
      result.kept.push(path);
      return;
    }
    mkdirSync(dirname(full), { recursive: true });
    if (typeof content === 'string') writeFileSync(full, content);
    else content();
    result.written.push(path);
  };
  const json = (value: unknown): string => JSON.stringify(value, null, 2) + '\n';
  write(
    'package.json',
    json({
      name: options.name ?? 'conversions',
      private: true,
      description: 'Offline conversions sent to Optimizely by convey: one job per jobs/<name>.sql and .json.',
      scripts: { plan: 'convey plan', test: 'convey test', convey: 'convey' },
      dependencies: { convey: conveySpec },
    }),
  );
  write('.gitignore', '# convey\'s embedded databases and caches\n.convey/\nnode_modules/\n');
  write(
    'config/default.json',
    json({
      $schema: schemaRef(dir, join(dir, 'config'), 'config.schema.json'),
      sources: { warehouse: { client: 'pglite', dataDir: '.convey/warehouse' } },
    }),
  );
  write(
    'config/production.json',
    json({
      $schema: schemaRef(dir, join(dir, 'config'), 'config.schema.json'),
      sources: { warehouse: { client: 'pg', connection: '${WAREHOUSE_URL}', statementTimeoutMs: 600000 } },
    }),
  );
  write('jobs/.gitkeep', '');
  for (const workflow of Object.keys(WORKFLOW_SECRETS)) {
    write(`.github/workflows/${workflow}`, () => copyFileSync(join(packageRoot, 'examples', 'github-actions', workflow), join(dir, '.github', 'workflows', workflow)));
  }
  write('README.md', readme());
  return result;
}

function readme(): string {
  const secrets = [...new Set(Object.values(WORKFLOW_SECRETS).flat())];
  return `# Conversions to Optimizely

Each job is \`jobs/<name>.sql\` (a SELECT whose aliases are convey's columns) and \`jobs/<name>.json\`
(its settings), sent every night by convey, exactly once per
conversion.

\`\`\`sh
npm ci
npx convey new orders --from analytics.orders   # a first job from a table: SQL, settings, a test
npx convey test orders                          # its mapping tests, on an embedded database
npx convey plan orders                          # what the next run would send (CONVEY_ENV=production for the warehouse)
npx convey plan orders --compare origin/main    # what your change does, conversion by conversion
\`\`\`

\`config/default.json\` holds an embedded example warehouse (\`.convey/warehouse\`, with a
\`phone_orders\` table when \`convey init\` seeded it); \`config/production.json\` reads the real one
from \`\${WAREHOUSE_URL}\` when \`CONVEY_ENV=production\`.

The workflows in \`.github/workflows/\` need these repository secrets: ${secrets.map((s) => `\`${s}\``).join(', ')}.
\`convey-plan.yml\` comments on every pull request that edits a job; \`convey-nightly.yml\` runs the
jobs listed in its matrix every night.
`;
}

/** The demo's orders table, seeded into the embedded example warehouse so a newcomer has a table to start from. */
export const exampleSeedSql = (): string => readFileSync(join(packageRoot, 'examples', 'demo', 'phone_orders.sql'), 'utf8');
