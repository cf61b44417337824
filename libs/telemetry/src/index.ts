export * from './otel-sdk';
export * from './trace-export';
export * from './spans';
export * from './metrics/text-format';
export * from './metrics/registry';
export * from './metrics/metrics-server';
export * from './traced-unary';
