import type { DestinationConfig } from '../config/project.ts';
import type { Destination } from './destination.ts';
import { optimizelyClassic } from './optimizely-classic.ts';
import { optimizelyEvents } from './optimizely-events.ts';

export interface ResolvedDestination {
  destination: Destination;
  /** Where requests go: over HTTP, or appended to an NDJSON file (the `file` type). */
  output: { kind: 'http' } | { kind: 'file'; path: string };
}

export function createDestination(config: DestinationConfig): ResolvedDestination {
  switch (config.type) {
    case 'optimizely-events':
      return { destination: optimizelyEvents(config), output: { kind: 'http' } };
    case 'optimizely-classic':
      return { destination: optimizelyClassic(config), output: { kind: 'http' } };
    case 'file': {
      // Its own ledger key: writing a conversion to a file is not sending it to Optimizely.
      const key = `file:${config.path}:`;
      const destination =
        config.protocol.type === 'optimizely-events'
          ? optimizelyEvents(config.protocol, `${key}optimizely-events:${config.protocol.accountId}`)
          : optimizelyClassic(config.protocol, `${key}optimizely-classic:${config.protocol.projectId}`);
      return { destination, output: { kind: 'file', path: config.path } };
    }
  }
}
