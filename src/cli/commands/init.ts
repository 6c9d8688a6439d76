import { resolve } from 'node:path';
import { Command } from 'commander';
import { loadProject, resolveSource } from '../../config/project.ts';
import { conveyPublished } from '../../package-root.ts';
import { exampleSeedSql, initProject, WORKFLOW_SECRETS } from '../../scaffold/init.ts';
import { openSource } from '../../source/open.ts';
import type { CliIO } from '../io.ts';

interface InitFlags {
  convey?: string;
  example: boolean;
}

export function initCommand(io: CliIO): Command {
  return new Command('init')
    .description('Lay out a jobs repository: package.json depending on convey, config/ (an embedded example warehouse and a production one), jobs/, .gitignore, the GitHub workflows.')
    .argument('[dir]', 'the folder (default: the current one)')
    .option('--convey <spec>', 'the dependency on convey written to package.json (a version, a git URL or a tarball)')
    .option('--no-example', 'do not seed the embedded example warehouse with a phone_orders table')
    .action(async (dirArg: string | undefined, flags: InitFlags) => {
      const dir = resolve(io.cwd, dirArg ?? '.');
      const result = initProject(dir, { ...(flags.convey ? { conveySpec: flags.convey } : {}) });
      const lines = result.written.map((f) => `  wrote ${f}`);
      if (result.kept.length) lines.push(`  kept ${result.kept.join(', ')} (already there)`);
      if (!flags.convey && !conveyPublished) {
        lines.push(
          `  package.json depends on this copy of convey (${result.conveySpec}): convey is not on the npm registry yet, and the package named convey there is an unrelated one.`,
          '  For CI, depend on something CI can fetch: a tarball kept in the repository (npm pack in convey\'s folder, then --convey file:vendor/convey-<version>.tgz) or a git URL (--convey git+https://…/convey.git).',
        );
      }
      if (flags.example) {
        const project = loadProject(dir, io.env);
        const source = await openSource(resolveSource(project, 'warehouse', 'config/default.json'), { command: 'convey init', create: true });
        try {
          const { rows } = await source.execute("select to_regclass('phone_orders') is not null as present");
          if (!(rows[0] as { present: boolean }).present) await source.execute(exampleSeedSql());
          const count = (await source.execute('select count(*)::int as n from phone_orders')).rows[0] as { n: number };
          lines.push(`  the embedded example warehouse (.convey/warehouse) has a phone_orders table of ${count.n} rows`);
        } finally {
          await source.close();
        }
      }
      const secrets = Object.entries(WORKFLOW_SECRETS).map(([file, names]) => `  .github/workflows/${file}: ${names.join(', ')}`);
      io.stdout.write(
        [
          `convey init ${dir}`,
          ...lines,
          '',
          'Repository secrets the workflows read (Settings → Secrets and variables → Actions):',
          ...secrets,
          '',
          'Next:',
          '  npm install',
          `  npx convey new orders --from ${flags.example ? 'phone_orders' : '<schema.table>'}`,
          '',
        ].join('\n'),
      );
    });
}
