import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PrometheusConfig } from '../config/notify.ts';
import { runMetrics, prometheusName, type MetricFamily } from './metrics.ts';
import type { Notifier, NotifyDeps } from './notifier.ts';

/**
 * A Prometheus text file per job (`convey_<job>.prom`) for node_exporter's textfile collector.
 * Written to a temporary name and renamed: node_exporter may read the folder at any moment, and
 * a rename within one folder replaces the file whole. The temporary name does not end in .prom,
 * which the collector would read.
 */
export function prometheusNotifier(config: PrometheusConfig, deps: NotifyDeps): Notifier {
  return {
    name: `prometheus (${config.dir})`,
    async runFinished(run) {
      const text = prometheusText(runMetrics(run, deps.clock.now()));
      const file = join(config.dir, `convey_${run.job}.prom`);
      const temporary = join(config.dir, `.convey_${run.job}.prom.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
      await mkdir(config.dir, { recursive: true });
      try {
        await writeFile(temporary, text);
        await rename(temporary, file);
      } catch (error) {
        await rm(temporary, { force: true });
        throw error;
      }
    },
  };
}

/** The text exposition format, version 0.0.4: HELP and TYPE, then one line per sample. */
export function prometheusText(families: readonly MetricFamily[]): string {
  const lines: string[] = [];
  for (const family of families) {
    if (family.samples.length === 0) continue;
    const name = prometheusName(family);
    lines.push(`# HELP ${name} ${family.help.replaceAll('\\', '\\\\').replaceAll('\n', '\\n')}`, `# TYPE ${name} gauge`);
    for (const sample of family.samples) {
      const labels = Object.entries(sample.labels).map(([k, v]) => `${k}="${v.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n')}"`);
      lines.push(`${name}{${labels.join(',')}} ${formatValue(sample.value)}`);
    }
  }
  return lines.join('\n') + '\n';
}

const formatValue = (value: number): string => (Number.isFinite(value) ? String(value) : value > 0 ? '+Inf' : value < 0 ? '-Inf' : 'NaN');
