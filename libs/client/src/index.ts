// @ferry/client: the SDK of Ferry's public API (ferry.v1.MigrationService).
export * from './ferry-client';
export * from './errors';
export * from './summary';
export * from './workload';
