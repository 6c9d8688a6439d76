import { Command } from 'commander';
import { ConveyError } from '../../errors.ts';
import { migrateDownAll } from '../../state/migrate.ts';
import { describeLocation, openStateStore, stateLocation, stateStoreError } from '../../state/store.ts';
import { projectFrom, withProjectOption, type CommonFlags } from '../context.ts';
import type { CliIO } from '../io.ts';

interface MigrateFlags extends CommonFlags {
  down?: boolean;
  yes?: boolean;
}

export function migrateCommand(io: CliIO): Command {
  return withProjectOption(
    new Command('migrate')
      .description('Create or update the state schema (runs, watermarks, ledger, rejects). Every command also does this on start.')
      .option('--down', 'roll every convey migration back: DELETES all state (ledger, watermarks, history)')
      .option('--yes', 'confirm --down'),
  ).action(async (flags: MigrateFlags) => {
    const project = projectFrom(io, flags);
    const location = stateLocation(project.dir, io.env);
    if (flags.down) {
      if (!flags.yes) {
        throw new ConveyError('USAGE', `migrate --down deletes all convey state in ${describeLocation(location)}`, {
          hint: 'Without the ledger, conversions already sent would be sent again. Add --yes if that is what you want.',
        });
      }
      const store = await openStateStore(location, 'convey migrate --down', false);
      try {
        const connection = store.connection;
        const reverted = await migrateDownAll(connection).catch((error: unknown) => {
          throw stateStoreError(error, location, 'roll back');
        });
        io.stdout.write(`rolled back ${reverted.length} migration(s) in ${describeLocation(location)}\n`);
      } finally {
        await store.close();
      }
      return;
    }
    const store = await openStateStore(location, 'convey migrate', false);
    try {
      const applied = await store.migrate();
      io.stdout.write(applied.length ? `applied ${applied.join(', ')} to ${describeLocation(location)}\n` : `${describeLocation(location)} is up to date\n`);
    } finally {
      await store.close();
    }
  });
}
