export * from './host-registry';
export * from './migration-records';
export * from './migration-events';
export * from './trace-headers';
export * from './kv-keys';
