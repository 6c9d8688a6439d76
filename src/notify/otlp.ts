import type { OtlpConfig } from '../config/notify.ts';
import { conveyVersion } from '../package-root.ts';
import { originOf } from './http.ts';
import { runMetrics, type MetricFamily } from './metrics.ts';
import type { Notifier, NotifyDeps } from './notifier.ts';

/**
 * The same figures as the Prometheus file, as OTLP metrics (gauges) to the endpoint of the
 * standard OpenTelemetry variables (OTEL_EXPORTER_OTLP_ENDPOINT, …, read in config/notify.ts).
 *
 * The SDK is loaded only here, when an endpoint is configured. The 2.x line (sdk-metrics 2.12,
 * otlp-transformer 0.223) runs on Node ^18.19 || >=20.6; 3.x needs Node 22.15, which convey does
 * not require. The SDK builds and serialises the data (JSON or protobuf); the request itself goes
 * through convey's HTTP (undici, with the notify deadline on the injected clock), not the SDK's
 * exporter, whose transport is node:http with timers of its own.
 */
export function otlpNotifier(config: OtlpConfig, deps: NotifyDeps): Notifier {
  return {
    name: `otlp (${originOf(config.url)})`,
    async runFinished(run) {
      if (config.refused) throw new Error(config.refused);
      const body = await encodeMetrics(runMetrics(run, deps.clock.now()), config);
      await deps.http.send(config.url, {
        headers: { ...config.headers, 'content-type': config.protocol === 'http/json' ? 'application/json' : 'application/x-protobuf' },
        body,
      });
    },
  };
}

/** One OTLP ExportMetricsServiceRequest holding the families as gauges. */
export async function encodeMetrics(families: readonly MetricFamily[], config: Pick<OtlpConfig, 'protocol' | 'resource'>): Promise<Uint8Array> {
  const [{ MeterProvider, MetricReader }, { resourceFromAttributes }, { JsonMetricsSerializer, ProtobufMetricsSerializer }] = await Promise.all([
    import('@opentelemetry/sdk-metrics'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/otlp-transformer'),
  ]);
  /** Collects when asked, never on a timer: a batch job reports once, at its end. */
  class OnDemandReader extends MetricReader {
    protected override async onForceFlush(): Promise<void> {}
    protected override async onShutdown(): Promise<void> {}
  }
  const reader = new OnDemandReader();
  const provider = new MeterProvider({ resource: resourceFromAttributes(config.resource), readers: [reader] });
  try {
    const meter = provider.getMeter('convey', conveyVersion);
    for (const family of families) {
      if (family.samples.length === 0) continue;
      const gauge = meter.createGauge(family.name, { description: family.help, unit: family.unit });
      for (const sample of family.samples) gauge.record(sample.value, sample.labels);
    }
    const { resourceMetrics, errors } = await reader.collect();
    if (errors.length) throw new Error(`could not collect the metrics: ${errors.map(String).join('; ')}`);
    const serializer = config.protocol === 'http/json' ? JsonMetricsSerializer : ProtobufMetricsSerializer;
    const body = serializer.serializeRequest(resourceMetrics);
    if (!body) throw new Error('could not encode the metrics');
    return body;
  } finally {
    await provider.shutdown();
  }
}
